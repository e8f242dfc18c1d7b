"""`python -m bench gpu --simulate`: the GPU training path on simulated CUDA tensors. Checked here: the command's
JSON at the tiny size, that the simulation fails a method whose mixing puts a CPU tensor against CUDA frames (as a
GPU would), and that the replayed backward is torch's backward (same gradients, about the same peak memory)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
# PE-CLIP draws all three mixings (mixup, FMix, none) and has a GRU and adapters in a frozen CLIP: the fullest
# path. Every method at its paper size: `python -m bench gpu --simulate` (docs/TRAINING_RECIPES.md); each method's
# objective under fp16/bf16 at extreme logits: tests/models/test_mixed_precision.py.
METHODS = ("pe_clip",)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    out = tmp_path_factory.mktemp("simulate") / "simulated.json"
    done = subprocess.run([sys.executable, "-m", "bench", "gpu", "--simulate", "--tiny", "--methods", *METHODS,
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    return done, json.loads(out.read_text())


def test_every_method_steps_on_simulated_cuda_and_its_objective_stays_finite(simulated):
    done, result = simulated
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert result["tiny"] and result["simulated_device"].startswith("cuda:0") and result["not_covered"]
    assert [r["method"] for r in result["methods"]] == list(METHODS)
    for row in result["methods"]:
        assert row["ok"] is True and row["errors"] == {}, row["errors"]
        assert isinstance(row["peak_memory_gib"], float) and row["peak_memory_gib"] > 0
        (step,) = row["steps"]
        assert step["batch"] == 2 and step["backward"] in ("torch", "replayed") and step["gradients"]["ok"]
        assert step["peak_memory_gib"] == row["peak_memory_gib"]
        # the peak holds at least the weights, the optimiser's state and what the forward saved for backward
        assert step["peak_memory_gib"] >= step["weights_gib"] + step["optimizer_state_gib"] + step[
            "saved_for_backward_gib"] > 0
        assert set(step["mixing"]) == {"mixup", "fmix", "none"}
        assert all(v == "ok" for v in step["mixing"].values())
        for dtype in ("float16", "bfloat16"):
            check = row["autocast"][dtype]
            assert check["ok"] and all(check["finite"].values()) and check["logit_spread"] >= 150
    assert "method | backbone" in done.stdout


def test_a_cpu_tensor_meeting_cuda_frames_fails_the_simulated_step(monkeypatch):
    """A mixing that builds its weights on the CPU (as FMix's mask once was) raises on the GPU: so here."""
    from bench import gpu_simulate, gpu_training
    from models.data import mixing

    def cpu_weights_mixup(faces, targets, alpha, rng=None):
        weights = torch.full(faces.shape[-2:], 0.5)  # made on the CPU (the default device), never moved
        return weights * faces + (1 - weights) * faces.flip(0), targets

    monkeypatch.setattr(mixing, "mixup", cpu_weights_mixup)
    recipe, _, _ = gpu_training.recipe_plan("baseline")  # the cheapest model, made to mix every batch
    recipe = recipe.model_copy(update={"mixup": 1.0, "mixup_alpha": 0.4})
    step = gpu_simulate.simulate_step("baseline", recipe, 2, tiny=True)
    assert "cpu" in step["errors"]["mixing (mixup)"] and "cuda" in step["errors"]["mixing (mixup)"]
    assert "step" not in step["errors"] and step["peak_memory_gib"] > 0  # the rest still ran, unmixed


def test_the_replayed_backward_is_torchs():
    from bench.fake_backward import backward, released_saved_tensors
    from bench.fake_cuda import LiveMemory

    class Net(torch.nn.Module):  # attention, a GRU, a broadcast bias and a frozen layer
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, dropout=0.0)
            self.gru = torch.nn.GRU(32, 16, batch_first=True)
            self.bias = torch.nn.Parameter(torch.zeros(16))
            self.frozen = torch.nn.Linear(16, 16).requires_grad_(False)

        def forward(self, x):
            h = self.encoder(x)
            return self.frozen(self.gru(h)[0] + self.bias).logsumexp(-1).mean() + (h * h).mean()

    torch.manual_seed(0)
    net, x = Net(), torch.randn(3, 5, 32)
    grads, peaks = {}, {}
    for engine in ("torch", "replayed"):
        net.zero_grad(set_to_none=True)
        memory = LiveMemory("cpu")
        for p in net.parameters():
            memory.track(p)
        with memory:
            with released_saved_tensors():
                loss = net(x)
            loss.backward() if engine == "torch" else backward(loss)
            del loss
        grads[engine] = {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}
        peaks[engine] = memory.peak
    assert set(grads["torch"]) == set(grads["replayed"]) and "frozen.weight" not in grads["torch"]
    for name, grad in grads["torch"].items():
        torch.testing.assert_close(grads["replayed"][name], grad)
    assert peaks["replayed"] == pytest.approx(peaks["torch"], rel=0.1)
