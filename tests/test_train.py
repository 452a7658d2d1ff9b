"""The proxy training loop: schedule, optimizer, determinism and faults (small synthetic data, CPU)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from nas.core.arch import Architecture
from nas.network import builder as model
from nas.settings import ProxySettings, SettingsError, describe_error
from nas.training import data
from nas.training.trainer import TrainingFailed, evaluate_accuracy, fit, lr_schedule, make_optimizer, resolve_device

TINY = Architecture.parse("stem_c8_s2,ds_r1_k3_s1_e1_c8,ir_r1_k3_s2_e3_c16,ir_r1_k3_s2_e3_c24,head_c32,act_relu")
QUICK = ProxySettings(epochs=2, batch_size=64, lr=0.1, warmup_epochs=0.2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def synthetic() -> data.ProxyData:
    return data.load("synthetic", resolution=16, max_train=2_000, max_eval=300)


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return model.build(TINY, num_classes=10, in_channels=1, dropout=0.0, drop_connect=0.0)


def testlr_schedule_warms_up_then_decays_by_cosine() -> None:
    config = ProxySettings(epochs=4, lr=0.2, warmup_epochs=1)
    lr = lr_schedule(config, steps_per_epoch=10)
    warm = [lr(s) for s in range(10)]
    assert warm == pytest.approx([0.02 * (s + 1) for s in range(10)])  # linear to the peak
    assert lr(10) == pytest.approx(0.2)
    assert lr(25) == pytest.approx(0.1 * (1 + math.cos(math.pi * 15 / 30)))  # half-way down: 0.1
    decay = [lr(s) for s in range(10, 40)]
    assert all(a > b for a, b in zip(decay, decay[1:])) and decay[-1] < 0.002
    no_warm = lr_schedule(ProxySettings(epochs=1, lr=0.1, warmup_epochs=0), steps_per_epoch=5)
    assert no_warm(0) == pytest.approx(0.1)


def test_optimizer_decays_only_weights_and_uses_nesterov() -> None:
    net = tiny_model()
    sgd = make_optimizer(net, ProxySettings(weight_decay=1e-4))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"]
    decayed, free = sgd.param_groups
    assert decayed["weight_decay"] == 1e-4 and free["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim == 1 for p in free["params"])
    bn = next(m for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    assert any(p is bn.weight for p in free["params"])
    rms = make_optimizer(net, ProxySettings(optimizer="rmsprop", lr=0.016))
    assert isinstance(rms, torch.optim.RMSprop) and rms.defaults["alpha"] == 0.9 and rms.defaults["eps"] == 1e-3


def test_proxy_settings_scale_the_lr_with_the_batch_size() -> None:
    config = ProxySettings(epochs=3, optimizer="sgd", lr=0.05).override(batch_size=128)
    assert (config.epochs, config.learning_rate, config.batch_size) == (3, 0.025, 128)  # the block's lr was for 256
    # the lr follows the batch size: linear scaling, unless the lr is given as well
    assert ProxySettings().override(batch_size=32).learning_rate == pytest.approx(0.1 * 32 / 256)
    assert ProxySettings(batch_size=64).learning_rate == pytest.approx(0.1 * 64 / 256)
    assert ProxySettings(lr=0.2, batch_size=64).override(batch_size=128).learning_rate == pytest.approx(0.4)
    assert ProxySettings().override(batch_size=32, lr=0.3).learning_rate == 0.3
    # RMSProp named without an lr gets the paper's scale (0.256 at batch 4096 → 0.016 at 256), not SGD's 0.1
    assert ProxySettings(optimizer="rmsprop", batch_size=512).learning_rate == pytest.approx(0.032)
    assert ProxySettings(optimizer="rmsprop", lr=0.01).learning_rate == 0.01


@pytest.mark.parametrize("field, value, fragment", [
    ("batch_size", 1, "greater than or equal to 2"), ("epochs", 0, "greater than or equal to 1"),
    ("resolution", 0, "greater than or equal to 8"), ("max_train_samples", -5, "greater than or equal to 2"),
    ("lr", float("inf"), "finite"), ("dataset", "imagenet", "neither a dataset name"),
])
def test_proxy_settings_refuse_values_out_of_bounds(field: str, value: object, fragment: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        ProxySettings().override(**{field: value})
    message = str(describe_error(caught.value, source="flags"))
    assert fragment in message and "\n" not in message
    assert isinstance(describe_error(caught.value, source="x"), SettingsError)


def test_fit_learns_the_synthetic_task(synthetic: data.ProxyData) -> None:
    result = fit(tiny_model(), synthetic, QUICK)
    assert result.accuracy > 0.5  # chance is 0.1
    assert result.epochs == 2 and result.steps == 2 * (2_000 // 64) and math.isfinite(result.final_loss)


def test_same_seed_same_result_on_cpu(synthetic: data.ProxyData) -> None:
    config = ProxySettings(epochs=1, batch_size=64, lr=0.1)
    a, b, c = tiny_model(0), tiny_model(0), tiny_model(0)
    ra, rb = fit(a, synthetic, config, seed=7), fit(b, synthetic, config, seed=7)
    rc = fit(c, synthetic, config, seed=8)  # same init, other batch order and augmentation
    assert (ra.accuracy, ra.final_loss) == (rb.accuracy, rb.final_loss)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert ra.final_loss != rc.final_loss


def test_non_finite_loss_stops_the_run_early(synthetic: data.ProxyData) -> None:
    epochs_seen: list[int] = []
    with pytest.raises(TrainingFailed, match="non-finite loss") as info:
        fit(tiny_model(), synthetic, ProxySettings(epochs=3, batch_size=64, warmup_epochs=0).model_copy(update={"lr": 1e9}),
            on_epoch=lambda epoch, loss, accuracy: epochs_seen.append(epoch))
    assert info.value.epochs == 0 and epochs_seen == []  # stopped inside the first epoch


class OutOfMemoryAt(nn.Module):
    """Wraps a model; its ``n``-th forward raises CUDA's out-of-memory error."""

    def __init__(self, inner: nn.Module, n: int) -> None:
        super().__init__()
        self.inner, self.n, self.calls = inner, n, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.n:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


@pytest.mark.slow
def test_out_of_memory_fails_the_run_with_the_reason(synthetic: data.ProxyData) -> None:
    steps = 2_000 // 64
    with pytest.raises(TrainingFailed, match="CUDA out of memory: .*Tried to allocate 2.00 GiB") as info:
        fit(OutOfMemoryAt(tiny_model(), n=steps + 3), synthetic, QUICK)
    assert info.value.epochs == 1  # one epoch completed before it
    assert fit(tiny_model(), synthetic, ProxySettings(epochs=1, batch_size=64, lr=0.1)).accuracy >= 0.0  # still usable


def test_accuracy_counts_correct_predictions() -> None:
    labels = torch.tensor([0, 1, 2, 3])
    proxy = SimpleNamespace(eval=data.Images(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), labels),
                            device=torch.device("cpu"), mean=(0.0,), std=(1.0,))
    always_one = nn.Sequential(nn.Flatten(), nn.Linear(4, 4))
    with torch.no_grad():
        always_one[1].weight.zero_()
        always_one[1].bias.copy_(torch.tensor([0.0, 1.0, 0.0, 0.0]))
    assert evaluate_accuracy(always_one, proxy, batch_size=3) == 0.25  # type: ignore[arg-type]


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.gpu
def test_fit_on_cuda_bf16_channels_last() -> None:
    proxy = data.load("synthetic", resolution=16, max_train=2_000, max_eval=300, device="cuda")
    net = tiny_model()
    result = fit(net, proxy, ProxySettings(epochs=2, batch_size=64, lr=0.1, warmup_epochs=0.2))
    assert result.accuracy > 0.5
    conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_batchnorm_recalibration_averages_the_training_batches(synthetic: data.ProxyData) -> None:
    from nas.training.data import normalize, stats_on
    from nas.training.trainer import recalibrate_batchnorm

    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
    norm = net[1]
    norm.running_mean.fill_(123.0)  # stale statistics, as after a few dozen steps at momentum 0.1
    net.eval()
    recalibrate_batchnorm(net, synthetic, batches=4, batch_size=100, seed=0)
    order = torch.randperm(len(synthetic.train), generator=torch.Generator().manual_seed(1))
    mean, std = stats_on(synthetic.device, synthetic.mean, synthetic.std)
    with torch.no_grad():
        outputs = [net[0](normalize(synthetic.train.images[order[i * 100:(i + 1) * 100]], mean, std))
                   for i in range(4)]
    expected = torch.stack([o.mean(dim=(0, 2, 3)) for o in outputs]).mean(0)
    assert torch.allclose(norm.running_mean, expected, atol=1e-5)
    assert norm.momentum == 0.1 and not net.training  # restored


@pytest.mark.slow
def test_per_epoch_accuracy_is_reported_and_does_not_change_training(synthetic: data.ProxyData) -> None:
    curve: list[tuple[int, float]] = []
    watched = fit(tiny_model(), synthetic, QUICK, on_epoch=lambda epoch, loss, acc: curve.append((epoch, acc)))
    plain = fit(tiny_model(), synthetic, QUICK)
    assert [e for e, _ in curve] == [1, 2] and curve[-1][1] == watched.accuracy
    assert watched.accuracy == plain.accuracy and watched.final_loss == plain.final_loss  # measuring is read-only
