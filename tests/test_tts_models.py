"""TTS models: monotonic alignment search vs brute force, the acoustic model, refiners, the CFM decoder."""

from __future__ import annotations

import itertools

import pytest
import torch

from ebtk.errors import EbtkError
from ebtk.tts.align import alignment_from_durations, durations_from_alignment, gaussian_logp, maximum_path

BACKENDS = ["torch"] + (["numba"] if __import__("importlib").util.find_spec("numba") else [])


def brute_force_best(logp: torch.Tensor) -> tuple[float, tuple[int, ...]]:
    """Best score and durations over every monotonic surjective alignment of (N, T) by enumeration."""
    n, t = logp.shape
    best, arg = -float("inf"), ()
    for cuts in itertools.combinations(range(1, t), n - 1):  # compositions of T into N positive parts
        bounds = (0, *cuts, t)
        dur = tuple(bounds[i + 1] - bounds[i] for i in range(n))
        score = sum(float(logp[i, bounds[i]: bounds[i + 1]].sum()) for i in range(n))
        if score > best:
            best, arg = score, dur
    return best, arg


@pytest.mark.parametrize("backend", BACKENDS)
def test_mas_matches_brute_force_dp(backend: str) -> None:
    gen = torch.Generator().manual_seed(0)
    shapes = [(1, 1), (2, 2), (3, 5), (4, 9), (3, 7), (5, 8)]
    n_max, t_max = 5, 9
    logp = torch.randn(len(shapes), n_max, t_max, generator=gen)
    tx = torch.tensor([s[0] for s in shapes])
    ty = torch.tensor([s[1] for s in shapes])
    path = maximum_path(logp, tx, ty, backend=backend)
    dur = durations_from_alignment(path)
    for b, (n, t) in enumerate(shapes):
        p = path[b, :n, :t]
        assert torch.all(p.sum(0) == 1), "every frame belongs to exactly one phoneme"
        assert path[b].sum() == t and path[b, n:].sum() == 0 and path[b, :, t:].sum() == 0
        owner = p.argmax(0)
        assert owner[0] == 0 and owner[-1] == n - 1 and torch.all(owner.diff() >= 0) and torch.all(owner.diff() <= 1)
        assert int(dur[b].sum()) == t and torch.all(dur[b, :n] >= 1)
        best, best_dur = brute_force_best(logp[b, :n, :t])
        assert float((logp[b, :n, :t] * p).sum()) == pytest.approx(best, abs=1e-4)
        assert tuple(dur[b, :n].tolist()) == best_dur


def test_mas_backends_agree_and_batching_is_exact() -> None:
    gen = torch.Generator().manual_seed(1)
    logp = torch.randn(4, 12, 60, generator=gen)
    tx, ty = torch.tensor([12, 5, 9, 1]), torch.tensor([60, 33, 9, 17])
    ref = maximum_path(logp, tx, ty, backend="torch")
    for backend in BACKENDS:
        assert torch.equal(maximum_path(logp, tx, ty, backend=backend), ref)
    for b in range(4):  # each item alone gives the same path as inside the padded batch
        alone = maximum_path(logp[b:b + 1, : tx[b], : ty[b]], tx[b:b + 1], ty[b:b + 1], backend="torch")
        assert torch.equal(alone[0], ref[b, : tx[b], : ty[b]])


def test_mas_refuses_impossible_alignment() -> None:
    with pytest.raises(EbtkError, match="phonemes but 3 frames"):
        maximum_path(torch.zeros(1, 5, 3), torch.tensor([5]), torch.tensor([3]))


def test_durations_round_trip_and_gaussian_logp() -> None:
    d = torch.tensor([[2, 1, 3, 0], [1, 1, 1, 1]])
    path = alignment_from_durations(d)
    assert path.shape == (2, 4, 6)
    assert torch.equal(durations_from_alignment(path), d)
    gen = torch.Generator().manual_seed(2)
    mu, y = torch.randn(2, 3, 4, generator=gen), torch.randn(2, 3, 5, generator=gen)
    brute = -0.5 * (y[:, :, None, :] - mu[:, :, :, None]).pow(2).sum(1)
    assert torch.allclose(gaussian_logp(mu, y), brute, atol=1e-5)


# -- acoustic model --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def utterance(tmp_path_factory):
    """One real espeak-ng utterance: (phoneme ids (1, N), log-mel (1, 80, T))."""
    from tts_fixtures import espeak_wav

    if __import__("shutil").which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    from ebtk.tts.audio import mel_spectrogram
    from ebtk.tts.text import TextFrontend

    text = "Seven silver spoons were found."
    wav = espeak_wav(tmp_path_factory.mktemp("utt") / "u.wav", text)
    fe = TextFrontend()
    return fe, torch.tensor([fe.encode(text)]), mel_spectrogram(torch.from_numpy(wav))[None]


def test_acoustic_model_overfits_one_utterance(utterance) -> None:
    from ebtk.tts.acoustic import AcousticConfig, AcousticModel

    fe, ph, mel = utterance
    torch.manual_seed(0)
    cfg = AcousticConfig(channels=64, enc_layers=1, dec_layers=4, dropout=0.0)
    model = AcousticModel(len(fe.symbols), cfg, float(mel.mean()), float(mel.std()))
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    lens = (torch.tensor([ph.shape[1]]), torch.tensor([mel.shape[-1]]))
    losses = []
    for _ in range(110):
        parts = model.losses(ph, lens[0], mel, lens[1])
        loss = sum(parts.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[0] / min(losses[-5:]) >= 10, losses[::20]
    # ground-truth (MAS) durations give a frame-aligned hypothesis of exactly the reference's length
    model.eval()
    dur = model.align_durations(ph, lens[0], mel, lens[1])
    assert int(dur.sum()) == mel.shape[-1] and int(dur.min()) >= 1
    hyp, mu_y, mask = model.hypothesis(ph, lens[0], dur)
    assert hyp.shape == mel.shape and mu_y.shape == mel.shape and bool(mask.all())
    l1 = (hyp - mel).abs().mean() / mel.std()
    assert l1 < 0.2  # fitted: the normalised L1 of an untrained model is about 1
    y, _, _ = model.infer(ph, length_scale=1.0)  # predicted durations: lengths near the reference's
    assert abs(y.shape[-1] - mel.shape[-1]) <= 0.25 * mel.shape[-1]


# -- refiners --------------------------------------------------------------------------------------------
def test_energy_refiner_score_is_closed_form_when_unet_is_silent() -> None:
    """With the U-Net's last layer at its zero init, g ≡ Ŷ and E = ½ Σ m ‖x − Ŷ‖²: score = −(x − Ŷ)·m."""
    from ebtk.energy import score_of
    from ebtk.tts.refiner import EnergyRefiner

    model = EnergyRefiner(channels=8, mel_mean=-5.0, mel_std=2.0)  # the output layer starts at zero
    gen = torch.Generator().manual_seed(3)
    x, hyp = torch.randn(2, 80, 12, generator=gen), torch.randn(2, 80, 12, generator=gen)
    mask = torch.ones(2, 1, 12)
    mask[1, :, 7:] = 0
    cond = {"hyp": hyp, "mask": mask}
    e = model(x, cond)
    assert torch.allclose(e, 0.5 * ((x - hyp).pow(2) * mask).sum((1, 2)), rtol=1e-5)
    assert torch.allclose(score_of(model, x, cond), -(x - hyp) * mask, atol=1e-5)


@pytest.mark.parametrize("kind", ["score", "energy"])
def test_refiner_ignores_padding(kind: str) -> None:
    """An utterance padded inside a batch gets the same score on its frames as alone (masked norms/convs)."""
    from ebtk.energy import score_of
    from ebtk.tts.refiner import build_refiner

    torch.manual_seed(4)
    model = build_refiner(kind, channels=16, text_cond=True, mel_mean=-5.0, mel_std=2.0)
    torch.nn.init.normal_(model.body.unet.out.weight, std=0.1)  # away from the zero init: a non-trivial field
    gen = torch.Generator().manual_seed(5)
    x, hyp, text = (torch.randn(1, 80, 13, generator=gen) for _ in range(3))
    alone = score_of(model, x, {"hyp": hyp, "text": text})

    def pad(a: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.nn.functional.pad(a, (0, 7), value=3.0), torch.randn(1, 80, 20, generator=gen)])

    mask = torch.ones(2, 1, 20)
    mask[0, :, 13:] = 0
    both = score_of(model, pad(x), {"hyp": pad(hyp), "text": pad(text), "mask": mask})
    assert torch.allclose(both[0, :, :13], alone[0], atol=1e-4)
    assert torch.all(both[0, :, 13:] == 0)


def test_refiner_errors_are_clear() -> None:
    from ebtk.tts.refiner import ScoreRefiner, build_refiner

    with pytest.raises(EbtkError, match="score or energy"):
        build_refiner("flow")
    with pytest.raises(EbtkError, match="hyp"):
        ScoreRefiner(channels=8)(torch.zeros(1, 80, 8), None)
    with pytest.raises(EbtkError, match="text_cond"):
        ScoreRefiner(channels=8, text_cond=True)(torch.zeros(1, 80, 8), {"hyp": torch.zeros(1, 80, 8)})


def test_unet_time_embedding_and_odd_lengths() -> None:
    from ebtk.nets.unet1d import UNet1d

    net = UNet1d(4, 3, channels=8, mults=(1, 2, 2), time_dim=16)
    x = torch.randn(2, 4, 13)
    y0, y1 = net(x, None, torch.zeros(2)), net(x, None, torch.ones(2))
    assert y0.shape == (2, 3, 13) and not torch.allclose(y0, y1)  # the time embedding reaches the output
    with pytest.raises(EbtkError, match="without t"):
        net(x)


# -- flow matching ---------------------------------------------------------------------------------------
def test_flow_matching_learns_and_samples(utterance) -> None:
    """A few CFM steps reduce its loss; Euler sampling with n steps gives a finite mel of the right length."""
    from ebtk.tts.acoustic import AcousticConfig
    from ebtk.tts.flow_matching import FlowMatchingTTS

    fe, ph, mel = utterance
    torch.manual_seed(6)
    model = FlowMatchingTTS(len(fe.symbols), AcousticConfig(channels=32, enc_layers=1, dropout=0.0),
                            float(mel.mean()), float(mel.std()), unet_channels=16)
    lens = (torch.tensor([ph.shape[1]]), torch.tensor([mel.shape[-1]]))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    first = last = None
    for i in range(40):
        torch.manual_seed(100 + i % 4)  # the same four (t, x0) draws, so the losses compare
        fm = model.losses(ph, lens[0], mel, lens[1])["fm"]
        opt.zero_grad()
        fm.backward()
        opt.step()
        first = float(fm.detach()) if first is None else first
        last = float(fm.detach()) if i >= 36 and (last is None or float(fm.detach()) < last) else last
    assert last < 0.7 * first
    dur = model.align_durations(ph, lens[0], mel, lens[1])
    for n in (1, 4):
        y, _, _ = model.hypothesis(ph, lens[0], dur, n_steps=n)
        assert y.shape == mel.shape and torch.isfinite(y).all()


def test_hypotheses_file_covers_the_unseen_words_split(tmp_path) -> None:
    """Every split the tts task makes, unseen-words included, gets hypotheses; its mel MSE is reported."""
    from ebtk.tts.acoustic import AcousticConfig, AcousticModel
    from ebtk.tts.hypotheses import load_hypotheses, write_hypotheses

    torch.manual_seed(0)
    model = AcousticModel(12, AcousticConfig(channels=8, enc_layers=1, dec_layers=1), 0.0, 1.0)
    utts = {f"u{k}": (torch.randint(1, 12, (4 + k,)), torch.randn(80, 20 + 3 * k)) for k in range(6)}
    splits = {"train": ["u0", "u1", "u2"], "val": ["u3"], "test": ["u4"], "unseen-words": ["u5"]}
    m = write_hypotheses(tmp_path / "hypotheses.pt", model, utts, splits, tmp_path, batch_size=2)
    h = load_hypotheses(tmp_path)
    assert h["splits"] == splits and set(h["hyp"]) == set(utts) and set(h["hyp_dropout"]) == set(splits["train"])
    hyp, ref = h["hyp"]["u5"].float(), utts["u5"][1]
    assert hyp.shape == ref.shape
    torch.testing.assert_close(m["mel_mse_unseen_words"], float((hyp - ref).pow(2).mean()), rtol=1e-3, atol=0)
