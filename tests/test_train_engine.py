"""The shared training engine: TrainConfig, TaskModule, fit (resume, NaN guard, schedules, clipping), BatchStream."""

import json
import math
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lstmkit.errors import ConfigError, DataError, TrainingError
from lstmkit.train import (
    BatchStream,
    EpochSeededSampler,
    TaskModule,
    TrainConfig,
    fit,
    rng_state,
    set_rng_state,
)
from lstmkit.train.module import clip_grad_norm

N_TRAIN, BATCH = 64, 8
STEPS_PER_EPOCH = N_TRAIN // BATCH


def _data(n: int, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=generator)
    y = x @ torch.tensor([[1.0], [2.0], [-1.0]]) + 0.5 + 0.05 * torch.randn(n, 1, generator=generator)
    return TensorDataset(x, y)


TRAIN, VAL = _data(N_TRAIN, 1), _data(32, 2)


class Regression(TaskModule):
    """A small MLP with dropout (so the random generators shape every update); records the
    learning rate of every optimiser step."""

    def __init__(self, network: nn.Module, config: TrainConfig) -> None:
        super().__init__(network, config)
        self.lrs: list[float] = []

    def step_loss(self, batch):
        x, y = batch
        if self.training:
            self.lrs.append(self.optimizers().param_groups[0]["lr"])
        return F.mse_loss(self.network(x), y)


def make_module(config: TrainConfig, cls: type = Regression, init_seed: int | None = None) -> TaskModule:
    torch.manual_seed(config.seed if init_seed is None else init_seed)
    network = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(0.3), nn.Linear(8, 1))
    return cls(network, config)


def train(module: TaskModule, run_dir, validation: bool = True, resume_from=None):
    stream = BatchStream(TRAIN, module.config.batch_size, True, module.config.seed, chunk=3)
    val = BatchStream(VAL, 16, False) if validation else None
    return fit(module, stream, val, run_dir, resume_from)


def config(**changes) -> TrainConfig:
    base = dict(max_epochs=4, batch_size=BATCH, learning_rate=0.02, lr_schedule="none", early_stopping_patience=0,
                loggers=())
    return TrainConfig(**{**base, **changes})


def weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# -- TrainConfig ------------------------------------------------------------------------------


@pytest.mark.parametrize("name,value", [
    ("max_epochs", 0), ("max_epochs", 2.5), ("max_epochs", True), ("batch_size", 0), ("batch_size", "32"),
    ("early_stopping_patience", -1), ("seed", -1), ("num_threads", 0),
    ("learning_rate", 0), ("learning_rate", -1e-3), ("learning_rate", math.nan), ("learning_rate", math.inf),
    ("weight_decay", -0.1), ("momentum", -0.5), ("gradient_clip", math.nan), ("gradient_clip", -1.0),
    ("min_delta", -1e-3), ("optimizer", "rmsprop"), ("lr_schedule", "step"), ("loggers", ("csv", "wandb")),
    ("loggers", "csv"), ("checkpoint_interval", -1.0), ("checkpoint_interval", math.inf),
])
def test_train_config_rejects_bad_values_naming_the_setting(name, value):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{name: value})
    assert name in str(info.value)
    received = "'wandb'" if value == ("csv", "wandb") else repr(value)
    assert received in str(info.value)


def test_train_config_round_trips_through_json_and_rejects_unknown_keys():
    original = TrainConfig(max_epochs=7, optimizer="sgd", lr_schedule="onecycle", loggers=("csv", "tensorboard"),
                           num_threads=2, seed=5)
    data = json.loads(json.dumps(original.to_dict()))
    assert data["loggers"] == ["csv", "tensorboard"]
    assert TrainConfig.from_dict(data) == original
    assert original.replace(max_epochs=9).max_epochs == 9 and original.replace(max_epochs=9).seed == 5
    with pytest.raises(ConfigError, match=r"unknown training setting\(s\) \['epochs'\]"):
        TrainConfig.from_dict({**data, "epochs": 3})
    with pytest.raises(ConfigError, match="max_epochs"):
        original.replace(max_epochs=0)


# -- fit --------------------------------------------------------------------------------------


def test_fit_lowers_the_loss_and_writes_both_checkpoints_and_csv_logs(tmp_path):
    module = make_module(config(max_epochs=5, loggers=("csv",)))
    x, y = VAL.tensors
    module.eval()
    with torch.no_grad():
        before = F.mse_loss(module.network(x), y).item()
    started = time.perf_counter()
    result = train(module, tmp_path)
    elapsed = time.perf_counter() - started
    assert 0 < result.seconds < elapsed  # the training loop's own time
    assert result.steps == 5 * STEPS_PER_EPOCH
    module.eval()
    with torch.no_grad():
        after = F.mse_loss(module.network(x), y).item()
    assert after < 0.3 * before
    assert result.monitor == "val_loss" and result.epochs == 5 and not result.stopped_early
    assert result.best_checkpoint == tmp_path / "checkpoints" / "best.ckpt"
    assert result.last_checkpoint == tmp_path / "checkpoints" / "last.ckpt"
    for path in (result.best_checkpoint, result.last_checkpoint):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        assert {"state_dict", "optimizer_states", "lstmkit_rng", "epoch"} <= checkpoint.keys()
    # the best weights are the ones left in the module, and their score is what the logs say
    best = torch.load(result.best_checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    assert_same_weights(weights(module), best)
    assert after == pytest.approx(result.best_score, rel=1e-5)
    logs = pd.read_csv(tmp_path / "logs" / "metrics.csv")
    assert {"train_loss", "val_loss", "epoch"} <= set(logs.columns)
    assert logs["val_loss"].dropna().min() == pytest.approx(result.best_score, rel=1e-6)
    assert logs["train_loss"].dropna().size == 5
    assert logs["train_loss"].dropna().iloc[-1] < logs["train_loss"].dropna().iloc[0]


def test_fit_without_validation_monitors_the_training_loss_and_writes_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    module = make_module(config(max_epochs=3, loggers=("csv", "tensorboard")))
    result = train(module, tmp_path, validation=False)
    assert result.monitor == "train_loss" and math.isfinite(result.best_score)
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    accumulator = EventAccumulator(str(events[0]))
    accumulator.Reload()
    losses = [event.value for event in accumulator.Scalars("train_loss")]
    assert len(losses) == 3 and min(losses) == pytest.approx(result.best_score, rel=1e-6)


def test_training_without_validation_is_not_warned_about(tmp_path):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(make_module(config(max_epochs=1)), tmp_path, validation=False)
    assert not [w for w in caught if "val_dataloader" in str(w.message)]


def test_same_seed_gives_identical_weights_and_another_seed_does_not(tmp_path):
    runs = []
    for k, seed in enumerate((3, 3, 4)):
        module = make_module(config(seed=seed, max_epochs=2))
        train(module, tmp_path / str(k))
        runs.append(weights(module))
    assert_same_weights(runs[0], runs[1])
    assert not all(torch.equal(runs[0][key], runs[2][key]) for key in runs[0])


def test_the_seed_of_the_config_fixes_dropout_whatever_the_global_generator(tmp_path):
    runs = []
    for k, global_seed in enumerate((11, 12)):
        module = make_module(config(seed=3, max_epochs=2), init_seed=0)
        torch.manual_seed(global_seed)  # e.g. other work done before fit
        train(module, tmp_path / str(k))
        runs.append(weights(module))
    assert_same_weights(runs[0], runs[1])


class Crash(Exception):
    """Stands for a killed process."""


class CrashingRegression(Regression):
    crash_at_epoch: int | None = None

    def on_train_epoch_start(self) -> None:
        if self.current_epoch == self.crash_at_epoch:
            raise Crash


@pytest.mark.parametrize("schedule", ["none", "cosine", "plateau", "onecycle"])
def test_resume_from_the_last_checkpoint_is_exact(tmp_path, schedule):
    # a schedule spans the planned run (cosine over max_epochs, one-cycle over every step), so the
    # interrupted run is planned for 4 epochs too, and dies at the start of its third
    settings = config(optimizer="adam", lr_schedule=schedule, early_stopping_patience=3, seed=7)
    straight = make_module(settings)
    straight_result = train(straight, tmp_path / "straight")

    interrupted = make_module(settings, CrashingRegression)
    interrupted.crash_at_epoch = 2
    with pytest.raises(Crash):
        train(interrupted, tmp_path / "resumed")
    last = tmp_path / "resumed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 1

    resumed = make_module(settings.replace(seed=7), init_seed=99)  # the checkpoint overrides everything
    resumed_result = train(resumed, tmp_path / "resumed", resume_from=last)

    assert resumed_result.epochs == straight_result.epochs == 4
    assert resumed.lrs == straight.lrs[2 * STEPS_PER_EPOCH:]
    assert_same_weights(weights(resumed), weights(straight))
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(last, map_location="cpu", weights_only=True)
    assert_same_weights(a["state_dict"], b["state_dict"])
    for key, value in a["optimizer_states"][0]["state"][0].items():
        assert torch.equal(value, b["optimizer_states"][0]["state"][0][key]), key
    assert resumed_result.best_score == straight_result.best_score


def test_resume_extends_a_finished_run_exactly_with_a_plateau_schedule(tmp_path):
    straight = make_module(config(lr_schedule="plateau", max_epochs=4))
    train(straight, tmp_path / "straight")
    first = make_module(config(lr_schedule="plateau", max_epochs=2))
    train(first, tmp_path / "extended")
    more = make_module(config(lr_schedule="plateau", max_epochs=4))
    train(more, tmp_path / "extended", resume_from=tmp_path / "extended" / "checkpoints" / "last.ckpt")
    assert_same_weights(weights(more), weights(straight))


def test_empty_loaders_are_refused(tmp_path):
    empty = TensorDataset(torch.zeros(0, 3), torch.zeros(0, 1))
    module = make_module(config())
    with pytest.raises(DataError, match="the training loader has no samples"):
        fit(module, BatchStream(empty, BATCH, True), None, tmp_path)
    with pytest.raises(DataError, match="the validation loader has no samples; pass val_loader=None"):
        fit(module, BatchStream(TRAIN, BATCH, True), BatchStream(empty, BATCH, False), tmp_path)


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_resuming_a_planned_schedule_with_another_length_is_refused(tmp_path, schedule):
    train(make_module(config(lr_schedule=schedule, max_epochs=2)), tmp_path)
    longer = make_module(config(lr_schedule=schedule, max_epochs=4))
    unit = "epochs" if schedule == "cosine" else "steps"
    planned = 2 if schedule == "cosine" else 2 * STEPS_PER_EPOCH
    with pytest.raises(ConfigError, match=rf"planned for {planned} {unit} but this {schedule} run plans "
                                          rf"{2 * planned} {unit} \(max_epochs=4\); resume with the settings"):
        train(longer, tmp_path, resume_from=tmp_path / "checkpoints" / "last.ckpt")


class NanAfter(Regression):
    """The training loss becomes NaN at a given optimiser step."""

    nan_at_step = 2 * STEPS_PER_EPOCH + 3  # in the third epoch

    def step_loss(self, batch):
        loss = super().step_loss(batch)
        if self.training and len(self.lrs) == self.nan_at_step:
            return loss * math.nan
        return loss


def test_nan_loss_stops_training_and_restores_the_best_good_weights(tmp_path):
    module = make_module(config(max_epochs=5), NanAfter)
    with pytest.raises(TrainingError) as info:
        train(module, tmp_path)
    message = str(info.value)
    assert "training loss became nan at epoch 2" in message and "Lower the learning rate" in message
    assert "best weights so far" in message and "best.ckpt" in message
    state = weights(module)
    assert all(torch.isfinite(v).all() for v in state.values())
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert_same_weights(state, best["state_dict"])
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 1  # the last complete, good epoch
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


class NanValidation(Regression):
    def validation_metrics(self, batch):
        loss = self.step_loss(batch)
        return {"val_loss": loss * math.nan if self.current_epoch == 1 else loss}


def test_nan_validation_loss_stops_training_before_saving_the_epoch(tmp_path):
    module = make_module(config(max_epochs=4), NanValidation)
    with pytest.raises(TrainingError, match="validation loss became nan at epoch 1"):
        train(module, tmp_path)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 0
    assert_same_weights(weights(module), last["state_dict"])


class Scripted(Regression):
    """Validation losses set by the test, one per epoch."""

    scores = [3.0, 1.0, 2.0, 0.5, 4.0, 5.0]

    def validation_metrics(self, batch):
        return {"val_loss": self.step_loss(batch) * 0.0 + self.scores[self.current_epoch]}


def test_last_checkpoint_is_the_final_epoch_even_when_it_did_not_improve(tmp_path):
    # Lightning's own save_last only writes in epochs that improved the monitored loss
    module = make_module(config(max_epochs=6), Scripted)
    result = train(module, tmp_path)
    best = torch.load(result.best_checkpoint, map_location="cpu", weights_only=True)
    last = torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)
    assert best["epoch"] == 3 and result.best_score == 0.5
    assert last["epoch"] == 5 and last["global_step"] == 6 * STEPS_PER_EPOCH


class Watcher(Callback):
    """Records, as every epoch starts, the checkpoint files on disk and their epochs."""

    def __init__(self, directory):
        self.directory, self.seen = directory, []

    def on_train_epoch_start(self, trainer, pl_module):
        self.seen.append({path.name: torch.load(path, map_location="cpu", weights_only=True)["epoch"]
                          for path in sorted(self.directory.glob("*.ckpt"))})


@pytest.mark.parametrize("interval", [0.0, 3600.0])
def test_checkpoints_are_written_at_most_every_interval_and_always_at_the_end(tmp_path, interval):
    module = make_module(config(max_epochs=3, checkpoint_interval=interval))
    watcher = Watcher(tmp_path / "checkpoints")
    stream = BatchStream(TRAIN, BATCH, True, 0, chunk=3)
    result = fit(module, stream, BatchStream(VAL, 16, False), tmp_path, callbacks=[watcher])
    if interval == 0:  # every epoch on disk as it ends
        assert [seen.get("last.ckpt") for seen in watcher.seen] == [None, 0, 1]
    else:  # held in memory, written once when training ends
        assert watcher.seen == [{}, {}, {}]
    last = torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)
    assert last["epoch"] == 2
    assert_same_weights(weights(module), torch.load(result.best_checkpoint, weights_only=True)["state_dict"])


def test_a_delayed_checkpoint_holds_the_weights_of_its_epoch_not_later_ones(tmp_path):
    module = make_module(config(max_epochs=6), Scripted)
    snapshots = []

    class Snapshot(Callback):
        def on_validation_end(self, trainer, pl_module):
            snapshots.append(weights(pl_module))

    stream = BatchStream(TRAIN, BATCH, True, 0, chunk=3)
    fit(module, stream, BatchStream(VAL, 16, False), tmp_path, callbacks=[Snapshot()])
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert_same_weights(best["state_dict"], snapshots[3])
    assert not all(torch.equal(snapshots[3][k], snapshots[5][k]) for k in snapshots[3])


def test_the_optimiser_uses_torchs_fused_kernel_on_the_cpu_with_the_same_update(tmp_path):
    for name, cls in (("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)):
        module = make_module(config(optimizer=name, weight_decay=0.01))
        optimizer = module.configure_optimizers()
        assert optimizer.defaults["fused"] is True
        torch.manual_seed(0)
        plain = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(0.3), nn.Linear(8, 1))
        plain.load_state_dict(module.network.state_dict())
        settings = dict(lr=0.02, weight_decay=0.01, **({"momentum": 0.9} if name == "sgd" else {}))
        reference = cls(plain.parameters(), **settings)
        x, y = VAL.tensors
        for _ in range(5):
            for net, opt in ((module.network, optimizer), (plain, reference)):
                opt.zero_grad()
                F.mse_loss(net[0:2](x).sum(1, keepdim=True), y).backward()
                opt.step()
        for a, b in zip(module.network.parameters(), plain.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


class CountUpdates(Callback):
    """A callback that implements the per-update hooks Lightning dispatches."""

    def __init__(self):
        self.backward = self.before_step = 0

    def on_before_backward(self, trainer, pl_module, loss):
        self.backward += 1

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.before_step += 1


def test_updates_skip_lightnings_hook_dispatch_only_when_nothing_listens_and_are_the_same(tmp_path):
    direct = make_module(config(max_epochs=2))
    stream = BatchStream(TRAIN, BATCH, True, 0, chunk=3)
    first = fit(direct, stream, None, tmp_path / "direct")
    assert direct._plain_updates
    counter = CountUpdates()
    hooked = make_module(config(max_epochs=2))
    second = fit(hooked, BatchStream(TRAIN, BATCH, True, 0, chunk=3), None, tmp_path / "hooked", callbacks=[counter])
    assert not hooked._plain_updates
    assert counter.backward == counter.before_step == 2 * STEPS_PER_EPOCH
    assert first.steps == second.steps == 2 * STEPS_PER_EPOCH  # Lightning counts the direct steps too
    assert_same_weights(weights(direct), weights(hooked))
    last = torch.load(first.last_checkpoint, map_location="cpu", weights_only=True)
    assert last["global_step"] == 2 * STEPS_PER_EPOCH


def test_mixed_precision_keeps_lightnings_update_path(tmp_path):
    # bf16 autocast is Lightning's job: the direct path is only for plain 32/64-bit runs
    module = make_module(config(max_epochs=1, precision="bf16-mixed"))
    result = fit(module, BatchStream(TRAIN, BATCH, True, 0, chunk=3), None, tmp_path)
    assert not module._plain_updates and result.steps == STEPS_PER_EPOCH


class Flat(Regression):
    """A loss the parameters cannot change: a plateau from the first epoch."""

    def step_loss(self, batch):
        super().step_loss(batch)
        return (self.network(batch[0]) * 0.0).sum() + 1.0


def test_early_stopping_ends_a_plateau_and_the_plateau_schedule_halves_the_rate(tmp_path):
    module = make_module(config(max_epochs=20, lr_schedule="plateau", early_stopping_patience=3), Flat)
    result = train(module, tmp_path)
    assert result.stopped_early
    assert result.epochs == 4  # epoch 0 sets the best, 1-3 do not improve on it
    # the plateau schedule's patience is max(1, 3 // 3) = 1: the second epoch without progress halves the rate
    per_epoch = module.lrs[::STEPS_PER_EPOCH]
    assert per_epoch == [0.02, 0.02, 0.02, 0.01]
    no_patience = make_module(config(max_epochs=3, lr_schedule="none", early_stopping_patience=0), Flat)
    assert not train(no_patience, tmp_path / "off").stopped_early


def test_cosine_schedule_anneals_per_epoch_to_zero(tmp_path):
    module = make_module(config(max_epochs=4, lr_schedule="cosine"))
    train(module, tmp_path)
    expected = [0.01 * (1 + math.cos(math.pi * epoch / 4)) for epoch in range(4)]
    np.testing.assert_allclose(module.lrs, np.repeat(expected, STEPS_PER_EPOCH), rtol=1e-6)
    assert module.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_onecycle_schedule_moves_the_rate_at_every_optimizer_step(tmp_path):
    module = make_module(config(max_epochs=3, lr_schedule="onecycle"))
    train(module, tmp_path)
    reference = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.02)
    schedule = torch.optim.lr_scheduler.OneCycleLR(reference, max_lr=0.02, total_steps=3 * STEPS_PER_EPOCH)
    expected = []
    for _ in range(3 * STEPS_PER_EPOCH):
        expected.append(reference.param_groups[0]["lr"])
        reference.step()
        schedule.step()
    np.testing.assert_allclose(module.lrs, expected, rtol=1e-6)
    assert len(set(module.lrs)) == len(module.lrs)
    assert max(module.lrs) == pytest.approx(0.02, rel=0.02) and module.lrs[-1] < 1e-4


class Huge(TaskModule):
    """A loss with a gradient of norm about 1e6 * sqrt(4)."""

    def step_loss(self, batch):
        return 1e6 * self.network.weight.sum() + 0.0 * batch[1].sum()


@pytest.mark.parametrize("clip", [1.0, 0.0])
def test_gradient_clipping_bounds_the_update(tmp_path, clip):
    torch.manual_seed(0)
    network = nn.Linear(3, 1)
    before = weights(network)
    module = Huge(network, config(max_epochs=1, batch_size=N_TRAIN, optimizer="sgd", momentum=0.0,
                                  learning_rate=1.0, gradient_clip=clip))
    train(module, tmp_path, validation=False)
    after = weights(network)
    update = torch.cat([(after[name] - before[name]).flatten() for name in before]).norm().item()
    if clip:
        assert update == pytest.approx(clip, rel=1e-4)
    else:  # the whole gradient: 1e6 for each of the 3 weights, 0 for the bias
        assert update == pytest.approx(1e6 * math.sqrt(3), rel=1e-4)


def _grads_of_norm(norm: float) -> list[nn.Parameter]:
    """Two parameters whose gradients have global 2-norm ``norm`` and one without a gradient."""
    torch.manual_seed(0)
    params = [nn.Parameter(torch.randn(s)) for s in ((4, 3), (5,), (2,))]
    for p in params[:2]:
        p.grad = torch.randn(p.shape)
    total = torch.cat([p.grad.flatten() for p in params[:2]]).norm()
    for p in params[:2]:
        p.grad *= norm / total
    return params


def _copy(params: list[nn.Parameter]) -> list[nn.Parameter]:
    copies = [nn.Parameter(p.detach().clone()) for p in params]
    for a, b in zip(params, copies):
        b.grad = None if a.grad is None else a.grad.clone()
    return copies


# within the bound, inside torch's 1e-6 margin, at the bound, above it, far above, non-finite
@pytest.mark.parametrize("norm", [1e-3, 0.5, 1.0 - 5e-7, 1.0, 3.0, 1e4, math.inf, math.nan])
def test_clip_grad_norm_gives_exactly_torchs_result(norm):
    mine = _grads_of_norm(1.0 if not math.isfinite(norm) else norm)
    if not math.isfinite(norm):
        mine[0].grad[0, 0] = norm
    theirs = _copy(mine)
    clip_grad_norm(iter(mine), 1.0)  # any iterable, as torch takes
    nn.utils.clip_grad_norm_(theirs, 1.0)
    for a, b in zip(mine[:2], theirs[:2]):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0, equal_nan=True)
    assert mine[2].grad is None


def test_clip_grad_norm_takes_a_single_tensor():
    (param,) = _grads_of_norm(5.0)[:1]
    clip_grad_norm(param, 1.0)
    assert param.grad.norm().item() == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_norm_skips_the_scaling_pass_within_the_bound(monkeypatch):
    calls = []
    real = nn.utils.clip_grads_with_norm_
    monkeypatch.setattr(nn.utils, "clip_grads_with_norm_", lambda *a, **k: calls.append(1) or real(*a, **k))
    clip_grad_norm(_grads_of_norm(0.5), 1.0)
    assert calls == []
    clip_grad_norm(_grads_of_norm(2.0), 1.0)
    assert calls == [1]


def test_clip_grad_norm_without_any_gradient_is_a_no_op():
    params = [nn.Parameter(torch.ones(3))]
    clip_grad_norm(params, 1.0)
    assert params[0].grad is None


def test_max_time_is_kept_to_one_update(tmp_path):
    """Lightning's Timer looks at the clock once per chunk of updates; the budget is checked after
    every update, so a budget that has run out after the first update stops the run there."""
    module = make_module(config(max_epochs=50, max_time=1e-6))
    stream = BatchStream(TRAIN, BATCH, True, 0, chunk=N_TRAIN // BATCH)
    assert len(stream) == 1  # one Lightning step holds the whole epoch's 8 updates
    assert fit(module, stream, None, tmp_path).steps == 1


def test_rng_state_round_trip():
    state = rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2] == second[2]


# -- BatchStream ------------------------------------------------------------------------------


class Indexed(torch.utils.data.Dataset):
    """Samples are their own index; ``__getitems__`` as WindowDataset has."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor(i)

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        return torch.tensor(indices)


def _ids(batch) -> list[int]:
    """The sample indices of a batch of ``Indexed`` (a tensor) or of a collated TensorDataset ([tensor])."""
    return (batch if isinstance(batch, torch.Tensor) else batch[0]).tolist()


def _epoch(stream: BatchStream, epoch: int) -> list[list[int]]:
    stream.sampler.set_epoch(epoch)
    chunks = list(stream)
    assert len(chunks) == len(stream)
    assert all(len(chunk) <= stream.chunk for chunk in chunks)
    return [_ids(batch) for chunk in chunks for batch in chunk]


@pytest.mark.parametrize("getitems", [True, False])
def test_batch_stream_chunks_the_batches_of_a_plain_shuffled_loop(getitems):
    dataset = Indexed(23) if getitems else TensorDataset(torch.arange(23))
    stream = BatchStream(dataset, 4, True, seed=5, chunk=3)
    assert stream.optimizer_steps == 6 and len(stream) == 2
    sampler = EpochSeededSampler(23, seed=5)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=4, sampler=sampler, collate_fn=(lambda b: b) if getitems else None)
        plain = [_ids(batch) for batch in loader]
        batches = _epoch(stream, epoch)
        assert batches == plain
        assert sorted(i for batch in batches for i in batch) == list(range(23))
        assert [len(b) for b in batches] == [4, 4, 4, 4, 4, 3]


def test_batch_stream_order_depends_on_seed_and_epoch_only():
    stream = BatchStream(Indexed(40), 8, True, seed=1, chunk=2)
    epoch0, epoch1 = _epoch(stream, 0), _epoch(stream, 1)
    assert epoch0 != epoch1
    assert _epoch(BatchStream(Indexed(40), 8, True, seed=1, chunk=5), 1) == epoch1  # chunking changes nothing
    assert _epoch(stream, 0) == epoch0
    assert _epoch(BatchStream(Indexed(40), 8, True, seed=2, chunk=2), 0) != epoch0
    fixed = BatchStream(Indexed(10), 4, False)
    assert _epoch(fixed, 3) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


@pytest.mark.parametrize("size, steps", [(23, 3), (24, 3), (40, 5)])
def test_batch_stream_gives_each_ddp_process_a_run_of_whole_batches(size, steps, monkeypatch):
    """The same seeded batches in every process; process r takes the r-th of two consecutive runs
    of them (the last padded with the first batches), so batches stay whole and in order."""
    stream = BatchStream(Indexed(size), 4, True, seed=3, chunk=2)
    whole = _epoch(stream, 1)
    shares = []
    for rank in (0, 1):
        monkeypatch.setattr(BatchStream, "_share", staticmethod(lambda rank=rank: (rank, 2)))
        assert stream.optimizer_steps == steps and len(stream) == math.ceil(steps / 2)
        shares.append(_epoch(stream, 1))
    padded = (whole * 2)[:2 * steps]
    assert shares == [padded[:steps], padded[steps:]]


def test_ddp_trains_two_processes_on_halves_of_the_data(tmp_path):
    """Two CPU processes (DDP, spawned): each takes half of every epoch's mini-batches; the best
    weights come back to this process."""
    module = make_module(config(devices=2, strategy="ddp_spawn", max_epochs=2))
    initial = weights(module)
    result = train(module, tmp_path)
    assert result.steps == 2 * STEPS_PER_EPOCH // 2 and result.epochs == 2 and math.isfinite(result.best_score)
    assert result.best_checkpoint is not None and result.best_checkpoint.exists()
    assert result.last_checkpoint == tmp_path / "checkpoints" / "last.ckpt" and not result.stopped_early
    assert any(not torch.equal(initial[k], v) for k, v in weights(module).items())  # trained weights came back

    # early stopping's decision comes back too: no epoch can improve by min_delta=10
    stopped = train(make_module(config(devices=2, strategy="ddp_spawn", max_epochs=6, early_stopping_patience=1,
                                       min_delta=10.0)), tmp_path / "early")
    assert stopped.stopped_early and stopped.epochs == 2


# -- validation without Lightning's loop, checkpoints taken once --------------------------------


_INLINE: list[int] = []  # id() of the module of every inline validation pass


@pytest.fixture(autouse=True)
def _count_inline_passes(monkeypatch):
    original = TaskModule._validate_inline
    monkeypatch.setattr(TaskModule, "_validate_inline", lambda self: _INLINE.append(id(self)) or original(self))
    _INLINE.clear()


def inline_calls(module: TaskModule) -> int:
    """How many validation passes ``module`` ran itself (not through Lightning's loop)."""
    return _INLINE.count(id(module))


class ListensToValidation(Callback):
    """A callback of Lightning's validation loop: lstmkit must keep that loop for it."""

    def __init__(self):
        self.epochs = 0

    def on_validation_epoch_end(self, trainer, pl_module):
        self.epochs += 1


def _checkpoint_contents_equal(a, b, where="checkpoint"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _checkpoint_contents_equal(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _checkpoint_contents_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.parametrize("cls,schedule", [(Scripted, "none"), (Regression, "plateau")])
def test_inline_validation_gives_the_run_of_lightnings_validation_loop(tmp_path, cls, schedule):
    # the same run twice: validated by the module at each epoch's end (nothing needs Lightning's
    # loop) and by Lightning's loop (a callback listens to it); the logs, the checkpoints, the
    # plateau schedule and the weights left in the module must not tell them apart
    settings = config(max_epochs=5, loggers=("csv",), lr_schedule=schedule, early_stopping_patience=3)
    inline = make_module(settings, cls)
    first = train(inline, tmp_path / "inline")
    assert inline_calls(inline) == 5 and inline.inline_validation is None  # the loader is not kept
    listener = ListensToValidation()
    looped = make_module(settings, cls)
    second = fit(looped, BatchStream(TRAIN, BATCH, True, settings.seed, chunk=3), BatchStream(VAL, 16, False),
                 tmp_path / "looped", callbacks=[listener])
    assert inline_calls(looped) == 0 and listener.epochs == 5
    assert first.best_score == second.best_score and first.epochs == second.epochs == 5
    assert cls is not Scripted or first.best_score == 0.5
    assert inline.lrs == looped.lrs
    assert_same_weights(weights(inline), weights(looped))
    logs = [pd.read_csv(path / "logs" / "metrics.csv") for path in (tmp_path / "inline", tmp_path / "looped")]
    for column in ("val_loss", "train_loss"):
        np.testing.assert_array_equal(logs[0][column].dropna().to_numpy(), logs[1][column].dropna().to_numpy())
    for name in ("best.ckpt", "last.ckpt"):
        a, b = (torch.load(path / "checkpoints" / name, map_location="cpu", weights_only=True)
                for path in (tmp_path / "inline", tmp_path / "looped"))
        assert a["epoch"] == b["epoch"] and a["global_step"] == b["global_step"]
        assert_same_weights(a["state_dict"], b["state_dict"])
        # what a resumed run continues from: the optimiser, the schedule and the random generators
        for key in ("optimizer_states", "lr_schedulers", "lstmkit_rng"):
            _checkpoint_contents_equal(a[key], b[key], key)
        # the loops' state differs only in the validation loop's own counters (inline: never run)
        assert a["loops"]["fit_loop"]["epoch_progress"] == b["loops"]["fit_loop"]["epoch_progress"]


def test_inline_validation_averages_the_metrics_over_the_samples(tmp_path):
    # validation batches of 16 and 4 samples: the epoch's value weighs each batch by its size
    module = make_module(config(max_epochs=1, loggers=("csv",)))
    val = BatchStream(TensorDataset(*(t[:20] for t in VAL.tensors)), 16, False)
    fit(module, BatchStream(TRAIN, BATCH, True, 0, chunk=3), val, tmp_path)
    assert inline_calls(module) == 1
    x, y = (t[:20] for t in VAL.tensors)
    module.eval()
    with torch.no_grad():
        first, second = F.mse_loss(module.network(x[:16]), y[:16]), F.mse_loss(module.network(x[16:]), y[16:])
    expected = (first * 16 + second * 4) / 20
    logged = pd.read_csv(tmp_path / "logs" / "metrics.csv")["val_loss"].dropna()
    assert logged.iloc[-1] == pytest.approx(float(expected), rel=1e-6)


class OwnValidationStep(Regression):
    def validation_step(self, chunk, chunk_idx):
        super().validation_step(chunk, chunk_idx)


class OwnEpochEnd(Regression):
    def on_train_epoch_end(self):
        super().on_train_epoch_end()


class WithCallbacks(Regression):
    def configure_callbacks(self):
        return [ListensToValidation()]


class ReadsEpochEnd(Callback):
    """Runs before the module's epoch-end hook: inline, it would see the last epoch's val_loss."""

    def on_train_epoch_end(self, trainer, pl_module):
        pass


@pytest.mark.parametrize("case", ["progress bar", "bf16", "64-bit", "own validation_step", "own epoch end",
                                  "configure_callbacks", "validation callback", "epoch-end callback",
                                  "user checkpoint"])
def test_lightnings_validation_loop_is_kept_whenever_something_may_need_it(tmp_path, case):
    from lightning.pytorch.callbacks import ModelCheckpoint

    precision = {"bf16": "bf16-mixed", "64-bit": "64-true"}.get(case, "32-true")
    settings = config(max_epochs=1, progress_bar=case == "progress bar", precision=precision)
    cls = {"own validation_step": OwnValidationStep, "own epoch end": OwnEpochEnd,
           "configure_callbacks": WithCallbacks}.get(case, Regression)
    module = make_module(settings, cls)
    callbacks = {"validation callback": [ListensToValidation()], "epoch-end callback": [ReadsEpochEnd()],
                 "user checkpoint": [ModelCheckpoint(tmp_path / "mine", monitor="val_loss",
                                                     save_on_train_epoch_end=False)]}.get(case, [])
    result = fit(module, BatchStream(TRAIN, BATCH, True, 0, chunk=3), BatchStream(VAL, 16, False), tmp_path,
                 callbacks=callbacks)
    assert not inline_calls(module)
    assert result.monitor == "val_loss" and math.isfinite(result.best_score)
    if case == "user checkpoint":  # it saves at validation end: Lightning's loop must run for it
        assert list((tmp_path / "mine").glob("*.ckpt"))


def test_the_last_checkpoint_reuses_the_best_ones_copy_with_the_same_contents(tmp_path, monkeypatch):
    from lightning.pytorch.trainer.connectors.checkpoint_connector import _CheckpointConnector

    from lstmkit.train.checkpoint import IntervalCheckpoint

    dumps = []
    original = _CheckpointConnector.dump_checkpoint
    monkeypatch.setattr(_CheckpointConnector, "dump_checkpoint",
                        lambda self, *a, **k: dumps.append(1) or original(self, *a, **k))
    settings = config(max_epochs=6, checkpoint_interval=3600.0)  # taken in memory, written at the end
    train(make_module(settings, Scripted), tmp_path / "shared")
    shared_dumps = len(dumps)

    init = IntervalCheckpoint.__init__
    monkeypatch.setattr(IntervalCheckpoint, "__init__",
                        lambda self, *a, share_with=None, **k: init(self, *a, **k))  # each takes its own copy
    dumps.clear()
    train(make_module(settings, Scripted), tmp_path / "unshared")
    # Scripted improves in epochs 0, 1 and 3: there the last checkpoint took the best one's copy
    assert len(dumps) - shared_dumps == 3 and len(dumps) == 6 + 3
    for name in ("best.ckpt", "last.ckpt"):
        a, b = (torch.load(tmp_path / run / "checkpoints" / name, map_location="cpu", weights_only=True)
                for run in ("shared", "unshared"))
        for checkpoint in (a, b):
            for state in checkpoint["callbacks"].values():  # the run directories differ, nothing else
                for key in ("dirpath", "best_model_path", "last_model_path", "kth_best_model_path"):
                    state.pop(key, None)
                state["best_k_models"] = sorted(state.get("best_k_models", {}).values())
        _checkpoint_contents_equal(a, b, name)


def test_the_best_weights_are_restored_from_memory_without_reading_the_file(tmp_path, monkeypatch):
    import lstmkit.train.engine as engine

    module = make_module(config(max_epochs=6), Scripted)

    def refuse(*args, **kwargs):
        raise AssertionError("the best checkpoint was read back from disk")

    monkeypatch.setattr(engine.torch, "load", refuse)
    result = train(module, tmp_path)
    monkeypatch.undo()
    best = torch.load(result.best_checkpoint, map_location="cpu", weights_only=True)
    assert best["epoch"] == 3
    assert_same_weights(weights(module), best["state_dict"])


def test_clip_grad_norm_of_gradients_of_two_dtypes_is_torchs():
    mine = [nn.Parameter(torch.ones(3) * 2.0), nn.Parameter(torch.ones(2, dtype=torch.float64) * 3.0)]
    for p in mine:
        p.grad = p.detach().clone()
    theirs = _copy(mine)
    clip_grad_norm(mine, 1.0)
    nn.utils.clip_grad_norm_(theirs, 1.0)
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)


class NoValLoss(Regression):
    def validation_metrics(self, batch):
        return {"val_error": self.step_loss(batch)}


def test_validation_metrics_without_val_loss_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"NoValLoss.validation_metrics returned \['val_error'\]; it must include "
                                          "'val_loss'"):
        train(make_module(config(max_epochs=1), NoValLoss), tmp_path)


class RecordingSampler(EpochSeededSampler):
    def __init__(self, size):
        super().__init__(size, 0, shuffle=False)
        self.epochs = []

    def set_epoch(self, epoch):
        self.epochs.append(epoch)
        super().set_epoch(epoch)


def test_the_validation_order_sees_the_epoch_as_in_lightnings_loop(tmp_path):
    # a validation sampler may follow the epoch (Lightning sets it before each pass)
    seen = []
    for callbacks in ([], [ListensToValidation()]):
        sampler = RecordingSampler(len(VAL))
        module = make_module(config(max_epochs=3))
        fit(module, BatchStream(TRAIN, BATCH, True, 0, chunk=3), BatchStream(VAL, 16, False, sampler=sampler),
            tmp_path / str(len(callbacks)), callbacks=callbacks)
        seen.append((inline_calls(module), sampler.epochs))
    (inline, inline_epochs), (looped, looped_epochs) = seen
    assert inline == 3 and looped == 0
    assert inline_epochs == looped_epochs == [0, 1, 2]


def test_a_run_resumes_exactly_from_a_checkpoint_of_the_other_validation_path(tmp_path):
    settings = config(max_epochs=4, lr_schedule="plateau", early_stopping_patience=3)
    straight = make_module(settings)
    train(straight, tmp_path / "straight")  # inline throughout
    first = make_module(settings.replace(max_epochs=2))
    fit(first, BatchStream(TRAIN, BATCH, True, settings.seed, chunk=3), BatchStream(VAL, 16, False),
        tmp_path / "mixed", callbacks=[ListensToValidation()])  # Lightning's loop
    assert inline_calls(first) == 0
    resumed = make_module(settings, init_seed=99)
    train(resumed, tmp_path / "mixed", resume_from=tmp_path / "mixed" / "checkpoints" / "last.ckpt")
    assert inline_calls(resumed) == 2
    assert_same_weights(weights(resumed), weights(straight))
    assert resumed.lrs == straight.lrs[2 * STEPS_PER_EPOCH:]


def test_checkpoints_are_written_whole_through_a_file_beside_them(tmp_path, monkeypatch):
    """A write that fails half-way leaves the previous checkpoint and no temporary file; the
    engine writes every checkpoint this way."""
    from lstmkit.train.checkpoint import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    target = tmp_path / "c" / "best.ckpt"
    io.save_checkpoint({"a": torch.ones(2)}, target)
    save = torch.save

    def broken(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"a": torch.zeros(2)}, target)
    monkeypatch.setattr(torch, "save", save)
    assert torch.load(target, weights_only=True)["a"].tolist() == [1.0, 1.0]
    assert [p.name for p in target.parent.iterdir()] == ["best.ckpt"]

    written = []
    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint",
                        lambda self, checkpoint, path, storage_options=None: written.append(Path(path).name))
    train(make_module(config()), tmp_path / "run")
    assert sorted(set(written)) == ["best.ckpt", "last.ckpt"]
