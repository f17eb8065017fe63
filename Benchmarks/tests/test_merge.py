"""Tests of Benchmarks/merge.py and the torch-free helpers of the PyTorch peer,
on the small hand-written JSON files in data/.

  python3 -m unittest discover -s Benchmarks/tests -v
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHMARKS = os.path.dirname(HERE)
sys.path.insert(0, BENCHMARKS)
sys.path.insert(0, os.path.join(BENCHMARKS, "peers"))

import merge  # noqa: E402
import pytorch_peer  # noqa: E402  (imports no torch at module level)

CLOVER = os.path.join(HERE, "data", "clover_small.json")
TORCH = os.path.join(HERE, "data", "torch_small.json")


def row(text, name, pass_):
    """The markdown table line for a benchmark and pass, split into cells."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 2 and cells[0] == name and cells[1] == pass_:
            return cells
    raise AssertionError(f"no row {name} {pass_}")


class MergeTests(unittest.TestCase):
    def setUp(self):
        self.text = merge.merge(merge.load(CLOVER), merge.load(TORCH))

    def test_kernel_ratios_are_peer_seconds_over_clover_seconds(self):
        cells = row(self.text, "gemm/4096", "forward")
        # Clover 2 ms; PyTorch strict 4 ms (Clover 2× faster), default 1 ms (Clover half as fast).
        self.assertEqual(cells[3:], ["2.00", "4.00", "1.00", "2.00×", "0.500×"])
        self.assertEqual(row(self.text, "gemm/4096", "backward")[-2:], ["4.00×", "1.00×"])

    def test_model_ratio_is_images_per_second(self):
        cells = row(self.text, "resnet50", "[4, 3, 56, 56] → 1000 classes")
        self.assertEqual(cells[3:8], ["100", "200", "400", "0.500×", "0.250×"])
        self.assertEqual(cells[8:], ["512.0 MiB", "256.0 MiB"])

    def test_other_shapes_missing_rows_and_errors_get_no_ratio(self):
        self.assertEqual(row(self.text, "conv3x3/r50-56-c64", "forward")[4:], ["other shape", "—", "—", "—"])
        self.assertEqual(row(self.text, "batchnorm/r50-7-c2048", "forward")[4:], ["0.500", "error", "0.500×", "—"])
        self.assertEqual(row(self.text, "sgd/resnet50", "update")[3], "error")
        notes = self.text.split("### Not compared")[1]
        self.assertIn("conv3x3/r50-56-c64 forward (strict): measured at different shapes", notes)
        self.assertIn("conv3x3/r50-56-c64 forward (default): no PyTorch result", notes)
        self.assertIn("PyTorch failed: RuntimeError: CUDA out of memory", notes)
        self.assertIn("sgd/resnet50 update: Clover failed: CL_OUT_OF_RESOURCES (-5)", notes)

    def test_summary_takes_geometric_means_per_group_and_pass(self):
        summary = self.text.split("### Summary")[1].split("###")[0]
        self.assertEqual(row(summary, "gemm", "forward")[2:], ["1", "2.00×", "0.500×"])
        self.assertEqual(row(summary, "model", "train_step")[2:], ["1", "0.500×", "0.250×"])
        self.assertNotIn("conv3x3", summary)

    def test_geomean(self):
        self.assertAlmostEqual(merge.geomean([2.0, 8.0]), 4.0)
        self.assertIsNone(merge.geomean([]))
        self.assertIsNone(merge.geomean([None]))

    def test_header_names_modes_and_flags(self):
        self.assertIn("PyTorch strict FP32: cuda.matmul.allow_tf32 = False, cudnn.allow_tf32 = False", self.text)
        self.assertIn("PyTorch default (TF32 convs): cuda.matmul.allow_tf32 = False, cudnn.allow_tf32 = True",
                      self.text)
        self.assertNotIn("Warning", self.text)

    def test_device_mismatch_is_flagged(self):
        peer = merge.load(TORCH)
        peer["device"] = "NVIDIA A100-SXM4-40GB"
        self.assertIn("**Warning:** the device names differ", merge.merge(merge.load(CLOVER), peer))

    def test_command_line_writes_out_file(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "merged.md")
            done = subprocess.run([sys.executable, os.path.join(BENCHMARKS, "merge.py"), CLOVER, TORCH, "--out", out],
                                  capture_output=True, text=True, check=True)
            with open(out) as f:
                self.assertEqual(f.read(), done.stdout)

    def test_formatting(self):
        self.assertEqual(merge.fmt(1234.5), "1,234")
        self.assertEqual(merge.fmt(12.34), "12.3")
        self.assertEqual(merge.fmt(0.012345), "0.0123")
        self.assertEqual(merge.fmt(None), "—")
        self.assertEqual(merge.fmt_bytes(1536), "1.5 KiB")


class PeerHelperTests(unittest.TestCase):
    def test_scaled_sizes_keep_full_list_and_exact_totals(self):
        full = [100, 10, 1000, 1]
        self.assertEqual(pytorch_peer.scaled_sizes(full, 1111, 4), full)
        half = pytorch_peer.scaled_sizes(full, 555, 4)
        self.assertEqual(sum(half), 555)
        self.assertEqual(len(half), 4)
        self.assertTrue(all(s >= 1 for s in half))
        # A list of another length is split evenly.
        self.assertEqual(pytorch_peer.scaled_sizes(full, 10, 3), [4, 3, 3])

    def test_cases_group_forward_and_backward_and_filter(self):
        header, rows = pytorch_peer.load_cases(CLOVER)
        self.assertEqual(header["repeat"], 3)
        groups = pytorch_peer.group_cases(rows)
        self.assertEqual(groups[0][0], "gemm/4096")
        self.assertEqual([r["pass"] for r in groups[0][1]], ["forward", "backward"])
        self.assertEqual([n for n, _ in pytorch_peer.group_cases(rows, ["MODEL/"])], ["model/resnet50"])

    def test_median_timing(self):
        self.assertEqual(pytorch_peer.median_timing([3.0, 1.0, 2.0]),
                         {"seconds": 2.0, "min_seconds": 1.0, "repetitions": 3})

    def test_test_data_is_valid_json(self):
        for path in (CLOVER, TORCH):
            with open(path) as f:
                self.assertIn("results", json.load(f))


if __name__ == "__main__":
    unittest.main()
