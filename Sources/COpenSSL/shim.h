#ifndef MRKPROXY_COPENSSL_SHIM_H
#define MRKPROXY_COPENSSL_SHIM_H
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/bn.h>
#include <openssl/sha.h>
#include <openssl/obj_mac.h>

/// OPENSSL_free is a macro (it passes __FILE__/__LINE__), which Swift cannot call.
static inline void COpenSSL_free(void *ptr) { OPENSSL_free(ptr); }
#include <string.h>

/// COpenSSL_hmac_sha256*: here because Swift warns on every call to OpenSSL 3's deprecated SHA256_*
/// functions; the deprecation is silenced once, in C.
/// HMAC-SHA256 with the inner and outer states computed once per key. OpenSSL 3's EVP_MAC
/// re-initialisation costs more than the two SHA-256 blocks of a short MAC (222 vs 100 ns here);
/// copying the keyed SHA256_CTX states is how HMAC works underneath, without the provider dispatch.
typedef struct {
    SHA256_CTX inner;
    SHA256_CTX outer;
} COpenSSL_HMACSHA256Key;

#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
static inline int COpenSSL_hmac_sha256_setkey(COpenSSL_HMACSHA256Key *k, const unsigned char *key, size_t length) {
    unsigned char block[64];
    unsigned char hashed[SHA256_DIGEST_LENGTH];
    if (length > sizeof block) {
        if (SHA256(key, length, hashed) == NULL) return 0;
        key = hashed;
        length = sizeof hashed;
    }
    int ok = 1;
    memset(block, 0x36, sizeof block);
    for (size_t i = 0; i < length; i++) block[i] ^= key[i];
    ok &= SHA256_Init(&k->inner);
    ok &= SHA256_Update(&k->inner, block, sizeof block);
    memset(block, 0x5c, sizeof block);
    for (size_t i = 0; i < length; i++) block[i] ^= key[i];
    ok &= SHA256_Init(&k->outer);
    ok &= SHA256_Update(&k->outer, block, sizeof block);
    OPENSSL_cleanse(block, sizeof block);
    OPENSSL_cleanse(hashed, sizeof hashed);
    return ok;
}

/// out = HMAC-SHA256(key, p1 ‖ p2 ‖ p3); 32 bytes.
static inline int COpenSSL_hmac_sha256(const COpenSSL_HMACSHA256Key *k, const void *p1, size_t n1, const void *p2, size_t n2,
                                       const void *p3, size_t n3, unsigned char *out) {
    SHA256_CTX c = k->inner;
    unsigned char inner[SHA256_DIGEST_LENGTH];
    int ok = 1;
    if (n1) ok &= SHA256_Update(&c, p1, n1);
    if (n2) ok &= SHA256_Update(&c, p2, n2);
    if (n3) ok &= SHA256_Update(&c, p3, n3);
    ok &= SHA256_Final(inner, &c);
    c = k->outer;
    ok &= SHA256_Update(&c, inner, sizeof inner);
    ok &= SHA256_Final(out, &c);
    OPENSSL_cleanse(&c, sizeof c);
    OPENSSL_cleanse(inner, sizeof inner);
    return ok;
}
#pragma clang diagnostic pop
#endif
