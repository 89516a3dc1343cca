"""Starting points for the New-job form. A preset sets only these fields; every other field keeps
its default, so presets never go stale when a field is added. A preset whose dataset is read
from a folder gets the first such folder a live worker reports, and is offered disabled, with
the reason, when none does or its config is refused here."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from pruneboard.spec import catalog
from pruneboard.spec.errors import describe
from pruneboard.spec.service import ServiceContext

PRESETS: tuple[dict[str, Any], ...] = (
    {
        "id": "digits",
        "label": "Digits quick demo",
        "about": "An MLP on scikit-learn's bundled 8×8 digits: runs in seconds on a CPU, no "
                 "data files.",
        "values": {"name": "digits demo", "model": "mlp", "dataset": "digits",
                   "method": "sdprun", "mlp_widths": [300, 100], "epochs": 20, "lr": 0.1,
                   "c": 0.015, "mu": 0.6, "log_interval": 10, "reference": "sgd",
                   "valley_interval": 5},
    },
    {
        # The sDprun paper's headline setting (VGG16 with BatchNorm on CIFAR-10, 93.97 % without
        # retraining): plain SGD-like step size, a small c and μ just above ½, the gRDA schedule.
        "id": "vgg16-cifar10",
        "label": "VGG16-BN / CIFAR-10 (paper)",
        "about": "The sDprun paper's setting. Needs a CIFAR-10 folder on a worker, and a GPU "
                 "to finish in hours rather than days.",
        "values": {"name": "vgg16-bn cifar10 sdprun", "model": "vgg16-bn",
                   "dataset": "cifar10", "method": "sdprun", "epochs": 160, "batch_size": 64,
                   "lr": 0.1, "c": 0.005, "mu": 0.51, "schedule": "grda-paper",
                   "schedule_unit": "epoch", "log_interval": 50},
    },
    {
        "id": "wrn-cifar100",
        "label": "WRN-28-10 / CIFAR-100",
        "about": "Wide ResNet on CIFAR-100 (top-5 accuracy is logged too). Needs a CIFAR-100 "
                 "folder on a worker and a GPU.",
        "values": {"name": "wrn-28-10 cifar100 sdprun", "model": "wrn-28-10",
                   "dataset": "cifar100", "method": "sdprun", "epochs": 200, "batch_size": 64,
                   "lr": 0.1, "c": 0.001, "mu": 0.51, "schedule": "grda-paper",
                   "schedule_unit": "epoch", "log_interval": 50},
    },
)


# Fine-tuning a model that arrives trained (a pushed model with weights): a short cosine schedule
# from a smaller step size. sDprun's threshold grows with √lr·(n·lr)^μ, so a tenth of the lr
# prunes nothing in 10 epochs; lr 0.05 with c 0.3 took a digits CNN trained to 98.6 % to 94.4 %
# at 54.5 % of its FLOPs (c 0.25: 97.5 % at 84.8 %; c 0.4: 83.1 % at 18.2 %). L1 filters at
# lr 0.01: 98.9 % at 69 %. ``overlay``: the form applies these over the chosen model and data.
FINE_TUNE_PRESETS: tuple[dict[str, Any], ...] = (
    {
        "id": "fine-tune-sdprun",
        "label": "Fine-tune a trained model (sDprun)",
        "about": "For a pushed model with weights: 10 epochs at lr 0.05 on a cosine schedule, "
                 "c 0.3; how much the threshold removes depends on the network (check the "
                 "forecast, and lower c to keep more).",
        "overlay": True,
        "values": {"method": "sdprun", "init": "pretrained", "epochs": 10, "lr": 0.05,
                   "schedule": "cosine", "c": 0.3, "mu": 0.51, "log_interval": 10},
    },
    {
        "id": "fine-tune-l1-filter",
        "label": "Fine-tune a trained model (L1 filters, 30 % FLOPs)",
        "about": "For a pushed model with weights: remove 30 % of the FLOPs by filter L1 norm "
                 "over the first half of 10 epochs at lr 0.01 with momentum, then fine-tune.",
        "overlay": True,
        "values": {"method": "l1-filter", "init": "pretrained", "epochs": 10, "lr": 0.01,
                   "momentum": 0.9, "weight_decay": 0.0005, "schedule": "cosine",
                   "target": "flops", "target_ratio": 0.3, "prune_start": 0.0,
                   "prune_end": 0.5, "log_interval": 10},
    },
)


def preset_values(preset: dict[str, Any], service: ServiceContext) -> dict[str, Any]:
    """The preset's fields, with a data folder a live worker has where its dataset needs one."""
    values = dict(preset["values"])
    if values.get("dataset") in catalog.FOLDER_DATASETS:
        folders = sorted(f.data_dir for f in service.folders_of(values["dataset"]))
        if folders:
            values["data_dir"] = folders[0]
    return values


def preset_document(preset: dict[str, Any], service: ServiceContext) -> dict[str, Any]:
    from pruneboard.spec.job import JobSubmission

    values = preset_values(preset, service)
    if preset.get("overlay"):
        # Checked when applied, on the chosen model: alone it names no model with weights.
        return {**preset, "values": values, "available": True, "disabled_reason": None}
    reason = None
    dataset = values.get("dataset")
    if dataset in catalog.FOLDER_DATASETS and "data_dir" not in values:
        reason = (f"no live worker reports a {dataset} folder; put one under a worker's data "
                  f"root")
    else:
        try:
            JobSubmission.model_validate(values, context={"service": service})
        except ValidationError as error:
            first = describe(error, JobSubmission)[0]
            reason = f"{first['field']}: {first['message']}"
    return {**preset, "values": values, "available": reason is None, "disabled_reason": reason}
