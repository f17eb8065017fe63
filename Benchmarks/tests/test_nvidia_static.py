"""Tests of scripts/nvidia/static_check.py's parsing, occupancy and budgets, on recorded ptxas
output and hand-made results (no clang or ptxas needed; scripts/nvidia_static.sh runs the real
check).

  python3 -m unittest discover -s Benchmarks/tests -v
"""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts", "nvidia"))

import static_check as sc  # noqa: E402

# ptxas 12.9 -v output, as printed for a program with two kernels and a helper left as a call.
PTXAS = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'convgemm_reduce' for 'sm_80'
ptxas info    : Function properties for convgemm_reduce
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 32 registers, used 0 barriers, 392 bytes cmem[0]
ptxas info    : Compile time = 15.619 ms
ptxas info    : Function properties for tap_offset
    16 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function 'convgemm_forward' for 'sm_80'
ptxas info    : Function properties for convgemm_forward
    256 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 168 registers, used 1 barriers, 256 bytes cumulative stack size, 16512 bytes smem, 488 bytes cmem[0]
"""


def result(family, options, functions, errors=()):
    return {"family": family, "options": options, "register_limit": None, "errors": list(errors),
            "targets": {"sm_80": functions}}


def function(registers=32, stack=0, stores=0, loads=0, shared=0, entry=True):
    return {"registers": registers, "stack": stack, "spill_stores": stores, "spill_loads": loads,
            "shared": shared, "entry": entry}


def inventory(family, options, kernels):
    return {"batches": {"m": 128}, "programs": [{"family": family, "options": options, "kernels": [
        {"name": name, "localSizes": sizes, "driverChosenLocal": False, "localArgumentBytes": dynamic,
         "launches": 1} for name, sizes, dynamic in kernels]}]}


class ParseTests(unittest.TestCase):
    def test_entries_helpers_and_resources(self):
        functions = sc.parse_ptxas(PTXAS)
        self.assertEqual(set(functions), {"convgemm_reduce", "convgemm_forward", "tap_offset"})
        forward = functions["convgemm_forward"]
        self.assertEqual((forward["registers"], forward["stack"], forward["spill_stores"],
                          forward["spill_loads"], forward["shared"], forward["entry"]),
                         (168, 256, 8, 12, 16512, True))
        self.assertEqual(functions["convgemm_reduce"]["shared"], 0)
        self.assertFalse(functions["tap_offset"]["entry"])

    def test_unresolved_functions(self):
        ptx = ".extern .func  (.param .b32 func_retval0) _Z4fabsf\n(\n.param .b32 a\n);\n" \
              ".visible .entry k()\n{\n}\n"
        self.assertEqual(sc.unresolved_functions(ptx), ["_Z4fabsf"])
        self.assertEqual(sc.unresolved_functions(".visible .entry k()\n{\n}\n"), [])

    def test_clang_only_constructs(self):
        source = "\n".join([
            "static inline float f(float x) { return x; }",
            "inline float g(float x) { return x; }",
            "float __attribute__((overloadable)) h(float x);",
            "// inline in a comment, __attribute__((overloadable)) too",
            "#pragma clang loop unroll(full)",
            "_Pragma(\"unroll\") for (;;) {}",
        ])
        found = sc.clang_only_uses(source)
        self.assertEqual([line for line, _ in found], [2, 3, 5])

    def test_register_limit_reaches_the_assembler(self):
        front, assembler = sc.split_options("-cl-std=CL1.2 -DTM=128 -cl-nv-maxrregcount=96")
        self.assertEqual(front, ["-cl-std=CL1.2", "-DTM=128"])
        self.assertEqual(assembler, ["--maxrregcount", "96"])
        self.assertEqual(sc.split_options("-DTM=64", 128)[1], ["--maxrregcount", "128"])
        self.assertEqual(sc.split_options("-DTM=64")[1], [])
        self.assertEqual(sc.split_options("-DMMA=1 -DMMA_EMULATE=1")[0], ["-DMMA=1"])
        with self.assertRaises(ValueError):
            sc.split_options("-cl-nv-arch sm_80")

    def test_tensor_core_programs_are_recognised(self):
        self.assertTrue(sc.is_tensor_core("-DMMA=1 -DTM=64"))
        # matmul.cl is tensor-core only: the planning device's emulation define marks it.
        self.assertTrue(sc.is_tensor_core("-DMMA_EMULATE=1 -DTA=1"))
        self.assertFalse(sc.is_tensor_core("-DMMA=0 -DTM=64"))
        self.assertFalse(sc.is_tensor_core("-DTM=64 -DMMA_EMULATE=0"))


class OccupancyTests(unittest.TestCase):
    def test_register_limited(self):
        # 128 registers x 256 items: 4096 per warp, 16 warps by registers, 8 per work-group.
        self.assertEqual(sc.resident_work_groups("sm_80", 128, 256, 8256), (2, "registers"))
        # 168 registers: 5376 per warp, 12 warps (rounded down to 4), one work-group.
        self.assertEqual(sc.resident_work_groups("sm_90", 168, 256, 8256), (1, "registers"))

    def test_thread_and_block_limited(self):
        self.assertEqual(sc.resident_work_groups("sm_80", 20, 256, 0), (8, "threads"))
        self.assertEqual(sc.resident_work_groups("sm_80", 16, 32, 0), (32, "blocks"))

    def test_shared_memory_limited(self):
        # 40 KiB + 1 KiB reserved: 4 in 164 KiB (sm_80), 5 in 228 KiB (sm_90).
        self.assertEqual(sc.resident_work_groups("sm_80", 32, 64, 40 * 1024), (4, "shared memory"))
        self.assertEqual(sc.resident_work_groups("sm_90", 32, 64, 40 * 1024), (5, "shared memory"))


class BudgetTests(unittest.TestCase):
    OPTIONS = "-cl-std=CL1.2 -DTM=128"

    def misses(self, family, functions, kernels, errors=()):
        rows, failures = sc.evaluate(inventory(family, self.OPTIONS, kernels),
                                     [result(family, self.OPTIONS, functions, errors)])
        return rows, failures

    def test_clean_kernel_passes(self):
        rows, failures = self.misses("elementwise", {"k": function()}, [("k", [[256]], 0)])
        self.assertEqual(failures, [])
        self.assertEqual((rows[0]["work_group"], rows[0]["resident"]), (256, 8))

    def test_spills_and_stack_fail_even_unlaunched(self):
        _, failures = self.misses("layout", {"k": function(stack=16, stores=4, loads=4)}, [])
        self.assertEqual(len(failures), 2)
        self.assertIn("spill", failures[0])
        self.assertIn("stack frame", failures[1])

    def test_local_memory_and_register_file(self):
        _, failures = self.misses("pooling", {"k": function(registers=40, shared=40 * 1024)},
                                  [("k", [[256]], 9 * 1024)])
        self.assertTrue(any("local memory exceed" in f for f in failures), failures)
        # 255 x 256 = 65,280 fits; 200 x 512 does not, and no such work-group fits an SM.
        _, failures = self.misses("pooling", {"k": function(registers=255)}, [("k", [[16, 16, 1]], 0)])
        self.assertEqual(failures, [])
        _, failures = self.misses("pooling", {"k": function(registers=200)}, [("k", [[16, 32, 1]], 0)])
        self.assertTrue(any("exceed 65536" in f for f in failures), failures)
        self.assertTrue(any("does not fit one SM" in f for f in failures), failures)

    def test_implicit_gemm_needs_two_resident_work_groups(self):
        _, failures = self.misses("convgemm", {"convgemm_forward": function(registers=168, shared=8256)},
                                  [("convgemm_forward", [[16, 16, 1]], 0)])
        self.assertEqual(len(failures), 1)
        self.assertIn("1 resident work-group per SM (limited by registers)", failures[0])
        # The same kernel elsewhere is held only to fitting one SM.
        _, failures = self.misses("depthwise", {"k": function(registers=168)}, [("k", [[256]], 0)])
        self.assertEqual(failures, [])

    def test_helper_calls_and_compile_errors_fail(self):
        _, failures = self.misses("loss", {"k": function(), "helper": function(entry=False)}, [("k", [[64]], 0)],
                                  errors=["ptxas -arch=sm_90 failed: boom"])
        self.assertEqual(len(failures), 2)
        self.assertTrue(any("helper helper compiled as a call" in f for f in failures), failures)

    def test_table_lists_every_row_and_the_misses(self):
        rows, failures = self.misses("convgemm", {"convgemm_forward": function(registers=168)},
                                     [("convgemm_forward", [[16, 16, 1]], 0)])
        text = sc.markdown(rows, failures, inventory("convgemm", self.OPTIONS, []), ["clang 15", "ptxas 12.9"])
        self.assertIn("## Budget misses", text)
        self.assertIn("| convgemm_forward | convgemm | `TM=128` | sm_80 | 168 | 0 | 0 | 0 | 256 | 1 (registers) |",
                      text)


if __name__ == "__main__":
    unittest.main()
