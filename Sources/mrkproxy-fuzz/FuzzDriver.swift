import Foundation
import MRKFuzzing

// Built two ways:
// - for fuzzing, with `-sanitize=fuzzer -D FUZZING` (see scripts/fuzz): libFuzzer supplies
//   `main` and calls `LLVMFuzzerTestOneInput`; `MRKPROXY_FUZZ_TARGET` picks the harness;
// - normally: `mrkproxy-fuzz seeds DIR` writes the generated seeds of every harness under DIR,
//   and `mrkproxy-fuzz replay TARGET FILE…` runs one harness over files (to reproduce a finding).

#if FUZZING
/// The harness this process runs, from `MRKPROXY_FUZZ_TARGET`.
let fuzzTarget: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["MRKPROXY_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        FileHandle.standardError.write(Data("set MRKPROXY_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    fuzzTarget.run(bytes)
    return 0
}

/// libFuzzer's driver (from the toolchain's libFuzzer, linked by `-sanitize=fuzzer`).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// The executable's entry point: SwiftPM links an executable target's `main` to
/// `<module>_main`, so the fuzzing build provides that and hands over to libFuzzer.
@_cdecl("mrkproxy_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzOneInput(data, size) }
}
#else
@main
struct FuzzDriver {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch arguments.first {
        case "seeds" where arguments.count == 2:
            let root = URL(fileURLWithPath: arguments[1])
            for target in FuzzTarget.allCases {
                let directory = root.appendingPathComponent(target.rawValue)
                try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                for (index, seed) in target.seeds.enumerated() {
                    FileManager.default.createFile(atPath: directory.appendingPathComponent("seed-\(index)").path, contents: Data(seed))
                }
                print("\(target.rawValue): \(target.seeds.count) seeds")
            }
        case "replay" where arguments.count >= 3:
            guard let target = FuzzTarget(rawValue: arguments[1]) else {
                print("unknown target \(arguments[1]); one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
                exit(2)
            }
            for path in arguments.dropFirst(2) {
                guard let data = FileManager.default.contents(atPath: path) else { print("cannot read \(path)"); exit(1) }
                target.run(Array(data))
            }
            print("\(arguments.count - 2) input(s) ran without a finding")
        default:
            print("usage: mrkproxy-fuzz seeds DIR | mrkproxy-fuzz replay TARGET FILE…  (build with scripts/fuzz to fuzz)")
            exit(2)
        }
    }
}
#endif
