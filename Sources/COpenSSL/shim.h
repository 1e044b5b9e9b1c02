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
#endif
