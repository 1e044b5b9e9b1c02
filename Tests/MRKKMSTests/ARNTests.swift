@testable import MRKKMS
import Testing

@Suite("KMS ARNs and MRK rules")
struct ARNTests {
    let mrkEast = "arn:aws:kms:us-east-1:111122223333:key/mrk-4321abcd12ab34cd56ef1234567890ab"
    let mrkSouth = "arn:aws:kms:ap-southeast-2:111122223333:key/mrk-4321abcd12ab34cd56ef1234567890ab"

    @Test func parsesKeyAndAliasARNs() throws {
        let arn = try KMSARN(parsing: mrkEast)
        #expect(arn.partition == "aws" && arn.region == "us-east-1" && arn.account == "111122223333")
        #expect(arn.resourceType == .key && arn.resourceId == "mrk-4321abcd12ab34cd56ef1234567890ab")
        #expect(arn.description == mrkEast)
        let alias = try KMSARN(parsing: "arn:aws:kms:us-west-2:111122223333:alias/team/app")
        #expect(alias.resourceType == .alias && alias.resourceId == "team/app")
    }

    @Test(arguments: [
        "", "arn:aws:kms:us-east-1:111122223333", "aws:aws:kms:us-east-1:111122223333:key/abc", "arn::kms:us-east-1:1:key/abc",
        "arn:aws:s3:us-east-1:1:key/abc", "arn:aws:kms::1:key/abc", "arn:aws:kms:us-east-1::key/abc",
        "arn:aws:kms:us-east-1:1:key", "arn:aws:kms:us-east-1:1:key/", "arn:aws:kms:us-east-1:1:grant/abc",
    ])
    func rejectsInvalidARNs(_ text: String) {
        #expect(throws: KMSError.self) { try KMSARN(parsing: text) }
    }

    @Test func identifiesMultiRegionKeys() throws {
        #expect(try KMSKeyIdentifier.isMultiRegion(mrkEast))
        #expect(try KMSKeyIdentifier.isMultiRegion("mrk-4321abcd12ab34cd56ef1234567890ab"))
        #expect(try !KMSKeyIdentifier.isMultiRegion("arn:aws:kms:us-east-1:2222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab"))
        #expect(try !KMSKeyIdentifier.isMultiRegion("1234abcd-12ab-34cd-56ef-1234567890ab"))
        // An alias is never an MRK, even when named mrk-….
        #expect(try !KMSKeyIdentifier.isMultiRegion("alias/mrk-looks-like-one"))
        #expect(try !KMSKeyIdentifier.isMultiRegion("arn:aws:kms:us-east-1:111122223333:alias/mrk-looks-like-one"))
        #expect(throws: KMSError.self) { try KMSKeyIdentifier.isMultiRegion("arn:aws:kms:us-east-1") }
    }

    @Test func mrkMatchIgnoresRegionOnly() {
        #expect(KMSKeyIdentifier.mrkMatch(mrkEast, mrkSouth))
        #expect(KMSKeyIdentifier.mrkMatch(mrkEast, mrkEast))
        #expect(KMSKeyIdentifier.mrkMatch(mrkSouth, "mrk-4321abcd12ab34cd56ef1234567890ab"))
        // Different account, partition or id: no match.
        #expect(!KMSKeyIdentifier.mrkMatch(mrkEast, mrkSouth.replacingOccurrences(of: "111122223333", with: "444455556666")))
        #expect(!KMSKeyIdentifier.mrkMatch(mrkEast, mrkSouth.replacingOccurrences(of: "arn:aws:", with: "arn:aws-cn:")))
        #expect(!KMSKeyIdentifier.mrkMatch(mrkEast, mrkSouth.replacingOccurrences(of: "890ab", with: "890ac")))
        // Single-Region keys only match identically.
        let srk = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        #expect(KMSKeyIdentifier.mrkMatch(srk, srk))
        #expect(!KMSKeyIdentifier.mrkMatch(srk, srk.replacingOccurrences(of: "us-east-1", with: "us-west-2")))
        // Aliases never MRK-match across regions.
        #expect(!KMSKeyIdentifier.mrkMatch("arn:aws:kms:us-east-1:111122223333:alias/mrk-a",
                                           "arn:aws:kms:us-west-2:111122223333:alias/mrk-a"))
    }

    @Test func duplicateMRKsAreReportedWithEveryIdentifier() throws {
        try KMSKeyIdentifier.assertMRKsAreUnique([mrkEast, "alias/x", "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab"])
        try KMSKeyIdentifier.assertMRKsAreUnique([])
        let other = "arn:aws:kms:eu-west-1:111122223333:key/mrk-00000000000000000000000000000000"
        let otherDup = "mrk-00000000000000000000000000000000"
        do {
            try KMSKeyIdentifier.assertMRKsAreUnique([mrkEast, other, mrkSouth, "alias/mrk-4321abcd12ab34cd56ef1234567890ab", otherDup])
            Issue.record("duplicates not detected")
        } catch let error as KMSError {
            #expect(error.code == .configuration)
            for id in [mrkEast, mrkSouth, other, otherDup] { #expect(error.message.contains(id)) }
            #expect(!error.message.contains("alias/"))
        }
    }

    @Test func derivesRegionalReplicaARNs() throws {
        #expect(try KMSKeyIdentifier.regionalARN(for: mrkEast, region: "ap-southeast-2").description == mrkSouth)
        #expect(try KMSKeyIdentifier.regionalARN(for: "mrk-4321abcd12ab34cd56ef1234567890ab", region: "ap-southeast-2",
                                                 account: "111122223333").description == mrkSouth)
        let srk = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        #expect(try KMSKeyIdentifier.regionalARN(for: srk, region: "ap-southeast-2").description == srk)
        #expect(throws: KMSError.self) { try KMSKeyIdentifier.regionalARN(for: "mrk-abc", region: "ap-southeast-2") }
    }
}
