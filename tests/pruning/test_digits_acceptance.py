"""The engine's promise on real data, with the defaults of the README's first command:
`pruneboard train --model mlp --dataset digits --method sdprun` removes at least 40 % of the
FLOPs while its test accuracy stays within 2 points of an SGD twin (same seed, initial weights,
data order and epochs)."""

import json

from cli.main import main


def run(method, tmp_path):
    out = tmp_path / f"{method}.jsonl"
    assert main(["train", "--model", "mlp", "--dataset", "digits", "--method", method,
                 "--quiet", "--out", str(out)]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_sdprun_removes_40_percent_of_flops_within_2_points_of_its_sgd_twin(tmp_path):
    sdprun, sgd = run("sdprun", tmp_path), run("sgd", tmp_path)
    # Twins: same seed, data and length; only the method differs.
    assert ({k: v for k, v in sdprun[0]["config"].items() if k != "method"} ==
            {k: v for k, v in sgd[0]["config"].items() if k != "method"})
    assert sdprun[0]["total_steps"] == sgd[0]["total_steps"]
    pruned, dense = sdprun[-1]["summary"], sgd[-1]["summary"]
    print(f"sdprun: accuracy {pruned['test_accuracy']:.4f}, FLOPs removed "
          f"{pruned['flops_reduction']:.3f}, {pruned['elapsed_s']:.1f} s; "
          f"sgd: accuracy {dense['test_accuracy']:.4f}, {dense['elapsed_s']:.1f} s")
    assert pruned["flops_reduction"] >= 0.40
    assert pruned["test_accuracy"] >= dense["test_accuracy"] - 0.02
    assert dense["flops_reduction"] == 0
