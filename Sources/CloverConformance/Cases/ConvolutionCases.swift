import Clover

extension ConformanceSuite {
    static func convolutionCases() -> [ConformanceCase] { [] }
}
