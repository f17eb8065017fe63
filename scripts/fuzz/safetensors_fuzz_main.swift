// libFuzzer entry point over the safetensors parser (scripts/fuzz_safetensors.sh).
// Every input must parse or throw SafeTensorsError: a trap, an overflow or an
// out-of-bounds read ends the run with the crashing input saved.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    _ = try? SafeTensors.parse(data, path: "fuzz-input")
    return 0
}
