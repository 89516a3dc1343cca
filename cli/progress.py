"""Turns engine events into a progress bar and a final summary table."""

from __future__ import annotations

import sys

from tqdm import tqdm


class ProgressPrinter:
    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar: tqdm | None = None
        self.postfix: dict[str, str] = {}

    def __call__(self, event: dict) -> None:
        if not self.enabled:
            return
        kind = event["type"]
        if kind == "start":
            warning = (event.get("forecast") or {}).get("warning")
            if warning:  # before the bar, so it stays readable above it
                print(f"forecast: {warning}", file=sys.stderr, flush=True)
            self.bar = tqdm(total=event["total_steps"], initial=event["step"], unit="step",
                            dynamic_ncols=True, file=sys.stderr,
                            desc=f"{event['config']['method']} {event['config']['model']}")
        elif kind == "train" and self.bar is not None:
            self.bar.update(event["step"] - self.bar.n)
            self.postfix.update(loss=f"{event['train_loss']:.3f}",
                                groups_pruned=f"{event['group_sparsity']:.0%}",
                                flops_cut=f"{1 - event['remaining_flops']:.0%}")
            self.bar.set_postfix(self.postfix, refresh=False)
        elif kind == "eval" and self.bar is not None:
            self.postfix["test_acc"] = f"{event['test_accuracy']:.2%}"
            self.bar.set_postfix(self.postfix)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    @staticmethod
    def summary_table(summary: dict) -> str:
        rows = [
            ("method / model / dataset",
             f"{summary['method']} / {summary['model']} / {summary['dataset']}"),
            ("steps", f"{summary['steps']}"),
            ("test accuracy", f"{summary.get('test_accuracy', float('nan')):.2%}"),
            ("test loss", f"{summary.get('test_loss', float('nan')):.4f}"),
            ("weight sparsity", f"{summary['weight_sparsity']:.2%}"),
            ("group sparsity", f"{summary['group_sparsity']:.2%}"),
            ("FLOPs removed", f"{summary['flops_reduction']:.2%} of "
                              f"{summary['dense_flops']:,}"),
            ("params remaining", f"{summary['remaining_params']:.2%} of "
                                 f"{summary['dense_params']:,}"),
            ("wall time", f"{summary['elapsed_s']:.1f} s"),
        ]
        if "test_top5" in summary:
            rows.insert(3, ("test top-5", f"{summary['test_top5']:.2%}"))
        compact = summary.get("compact")
        if compact:
            rows.append(("compact network", f"{compact['compact_params']:,} params, test "
                                            f"accuracy {compact['compact_test_accuracy']:.2%}"))
            rows += [(f"latency {row['device']} batch {row['batch_size']}",
                      f"{row['dense_ms']:.3g} → {row['compact_ms']:.3g} ms "
                      f"({row['speedup']:.2f}×)") for row in compact["latency"]]
        width = max(len(name) for name, _ in rows)
        line = "-" * (width + 3 + max(len(value) for _, value in rows))
        body = "\n".join(f"{name.ljust(width)} | {value}" for name, value in rows)
        return f"{line}\n{body}\n{line}"
