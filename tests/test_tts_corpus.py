"""Built-in corpus generator, the LJSpeech-layout loader, and the text front-end (real engines, no mocks)."""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from ebtk.errors import EbtkError
from ebtk.tts.audio import mel_spectrogram
from tts_fixtures import needs_espeak, needs_flite


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    from ebtk.tts.corpus import make_corpus

    if shutil.which("flite") is None:
        pytest.skip("flite not installed")
    return make_corpus(tmp_path_factory.mktemp("c") / "corpus", n=10, seed=3, engine="flite", workers=2)


# ----------------------------------------------------------------------------------------------- corpus
@needs_flite
def test_corpus_layout_and_loader(corpus_dir):
    from ebtk.tts.corpus import make_sentences
    from ebtk.tts.dataset import LJSpeechCorpus, vocabulary

    lines = (corpus_dir / "metadata.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 10
    for line in lines:
        uid, text, norm = line.split("|")
        assert 3 <= len(text.split()) <= 20 and norm and not any(c.isdigit() for c in norm)
        info = sf.info(str(corpus_dir / "wavs" / f"{uid}.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
        assert 0.5 < info.duration < 15
    meta = json.loads((corpus_dir / "corpus.json").read_text())
    assert meta["engine"] == "flite" and meta["voices"] == ["slt"] and meta["seed"] == 3 and meta["n"] == 10
    assert meta["text"] == "mixed" and [line.split("|")[1] for line in lines] == make_sentences(10, 3)
    assert meta["vocabulary"] == len(vocabulary([line.split("|")[2] for line in lines]))
    assert meta["default_splits"] is None  # 10 utterances cannot hold the default 50 + 100 + 100
    params = [u["params"] for u in meta["utterances"]]
    assert len({p["duration_stretch"] for p in params}) > 1 and len({p["int_f0_target_mean"] for p in params}) > 1

    c = LJSpeechCorpus(corpus_dir)
    summary = c.validate(strict=True)
    assert summary["n"] == 10 and summary["rates"] == {22050: 10}
    assert [u.id for u in c.items] == [line.split("|")[0] for line in lines]
    u = c.items[0]
    w = c.wav(u.id)
    assert w.dtype == np.float32 and w.ndim == 1 and np.abs(w).max() <= 1.0
    # calling make_corpus again with the same settings is a no-op; a different one refuses the non-empty dir
    from ebtk.tts.corpus import make_corpus

    assert make_corpus(corpus_dir, n=10, seed=3, engine="flite", workers=2) == corpus_dir
    with pytest.raises(EbtkError, match="not empty"):
        make_corpus(corpus_dir, n=10, seed=4, engine="flite")


@needs_flite
def test_same_seed_same_metadata(corpus_dir, tmp_path):
    from ebtk.tts.corpus import make_corpus, make_sentences

    assert make_sentences(50, 7) == make_sentences(50, 7) != make_sentences(50, 8)
    again = make_corpus(tmp_path / "again", n=10, seed=3, engine="flite", workers=1)
    assert (again / "metadata.csv").read_text() == (corpus_dir / "metadata.csv").read_text()
    a, b = (json.loads((d / "corpus.json").read_text())["utterances"] for d in (again, corpus_dir))
    assert [(x["voice"], x["params"]) for x in a] == [(x["voice"], x["params"]) for x in b]


def test_grammar_sentences_are_varied():
    from ebtk.tts.corpus import grammar_sentences, make_sentences

    s = grammar_sentences(300, 0)
    assert make_sentences(300, 0, text="grammar") == s
    assert len(set(s)) == 300 and all(3 <= len(x.split()) <= 15 for x in s)
    assert sum(x.endswith("?") for x in s) > 30 and sum(any(c.isdigit() for c in x) for x in s) > 30
    assert sum("," in x for x in s) > 30


def test_mixed_sentences_cover_a_broad_vocabulary():
    """`ebtk corpus make DIR --n 500` draws its texts with make_sentences(500, seed) (test_cli_corpus_make_and_check
    checks that the command does): over 1000 distinct words, against about 230 for the whole grammar."""
    from ebtk.tts.corpus import GRAMMAR_SHARE, grammar_sentences, make_sentences, wordnet_sentences
    from ebtk.tts.dataset import vocabulary
    from ebtk.tts.text import normalize_text

    s = make_sentences(500, 0)
    assert len(set(s)) == 500 and make_sentences(500, 0) == s != make_sentences(500, 1)
    assert len(vocabulary(s)) >= 1000 and len(vocabulary([normalize_text(x) for x in s])) >= 1000
    assert len(vocabulary(grammar_sentences(2000, 0))) < 300
    pool, grammar = set(wordnet_sentences()), set(grammar_sentences(round(GRAMMAR_SHARE * 500), 0))
    assert sum(x in grammar for x in s) == 100 and sum(x in pool for x in s) == 400
    assert sum(any(c.isdigit() for c in x) for x in s) > 20  # the grammar's numbers, dates and money
    assert all(5 <= len(x.split()) <= 20 and x[0].isupper() and x[-1] in ".?!" for x in s if x in pool)
    assert s[:50] != [x for x in s if x in pool][:50]  # grammar and WordNet sentences are interleaved
    with pytest.raises(EbtkError, match="smaller --n"):
        make_sentences(40_000, 0)
    with pytest.raises(EbtkError, match="unknown corpus text"):
        make_sentences(5, 0, text="bible")


def test_wordnet_list_is_clean_and_licensed():
    from importlib.resources import files

    from ebtk.tts.corpus import wordnet_sentences
    from ebtk.tts.dataset import vocabulary

    s = wordnet_sentences()
    assert len(s) > 25_000 and len(set(s)) == len(s) and s == sorted(s)
    assert all(5 <= len(x.split()) <= 20 and x[0].isupper() and x[-1] in ".?!" for x in s)
    assert all(c.isalpha() or c in " ,;:'!?.-" for x in s for c in x)
    assert len(vocabulary(s)) > 20_000
    notice = (files("ebtk") / "data" / "WORDNET_LICENSE").read_text()
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in notice and "Permission to use" in notice


@needs_flite
def test_resynthesize_rebuilds_corpus_wavs_exactly(corpus_dir, tmp_path):
    """A few utterances from corpus.json alone (what the shipped model's record carries) give the same
    samples as the corpus."""
    from ebtk.tts.audio import load_wav
    from ebtk.tts.corpus import resynthesize

    utts = json.loads((corpus_dir / "corpus.json").read_text())["utterances"][3:5]
    paths = resynthesize(utts, tmp_path / "wavs", engine="flite")
    assert [p.name for p in paths] == [f"{u['id']}.wav" for u in utts]
    for u, p in zip(utts, paths):
        a, b = load_wav(p), load_wav(corpus_dir / "wavs" / f"{u['id']}.wav")
        assert a.shape == b.shape and np.array_equal(a, b)
    assert sorted(q.name for q in (tmp_path / "wavs").iterdir()) == sorted(p.name for p in paths)  # no temp left


@needs_espeak
def test_espeak_engine_variants(tmp_path):
    from ebtk.tts.corpus import make_corpus

    d = make_corpus(tmp_path / "e", n=3, seed=0, engine="espeak", voice="en-us,en-us+f3", vary=True, workers=2)
    meta = json.loads((d / "corpus.json").read_text())
    assert meta["engine"] == "espeak" and set(meta["voices"]) == {"en-us", "en-us+f3"}
    assert all(sf.info(str(d / "wavs" / f"{u['id']}.wav")).samplerate == 22050 for u in meta["utterances"])


def test_missing_engine_is_a_clear_error(tmp_path, monkeypatch):
    from ebtk.tts.corpus import make_corpus

    monkeypatch.setenv("PATH", str(tmp_path))  # no engines on PATH
    with pytest.raises(EbtkError, match="apt-get install flite"):
        make_corpus(tmp_path / "x", n=2, engine="flite")
    with pytest.raises(EbtkError, match="apt-get install espeak-ng"):
        make_corpus(tmp_path / "x", n=2, engine="espeak")


# ----------------------------------------------------------------------------------------------- loader
def _copy(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".ebtk_cache", "splits"))
    return dst


@needs_flite
def test_loader_rejects_broken_corpora(corpus_dir, tmp_path):
    from ebtk.tts.dataset import LJSpeechCorpus

    with pytest.raises(EbtkError, match="metadata.csv"):
        LJSpeechCorpus(tmp_path)
    d = _copy(corpus_dir, tmp_path / "missing")
    victim = LJSpeechCorpus(d).items[4].wav_path
    victim.unlink()
    with pytest.raises(EbtkError, match=victim.name):
        LJSpeechCorpus(d).validate()

    d = _copy(corpus_dir, tmp_path / "empty")
    lines = (d / "metadata.csv").read_text().splitlines()
    uid = lines[2].split("|")[0]
    lines[2] = f"{uid}||"
    (d / "metadata.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(EbtkError, match=f"metadata.csv.*{uid}"):
        LJSpeechCorpus(d).validate()

    d = _copy(corpus_dir, tmp_path / "garbage")
    bad = LJSpeechCorpus(d).items[0].wav_path
    bad.write_bytes(b"RIFF....garbage")
    with pytest.raises(EbtkError, match=bad.name):
        LJSpeechCorpus(d).validate()


@needs_flite
def test_other_sample_rate_is_resampled_with_warning(corpus_dir, tmp_path):
    from ebtk.tts.dataset import LJSpeechCorpus

    d = _copy(corpus_dir, tmp_path / "rate")
    c = LJSpeechCorpus(d)
    u = c.items[1]
    w, _ = sf.read(str(u.wav_path), dtype="float32")
    from ebtk.tts.audio import resample

    sf.write(str(u.wav_path), resample(w, 22050, 16000), 16000, subtype="PCM_16")
    with pytest.warns(UserWarning, match="resampled"):
        assert c.validate()["rates"] == {22050: 9, 16000: 1}
    with pytest.raises(EbtkError, match="strict"):
        c.validate(strict=True)
    with pytest.warns(UserWarning, match="16000"):
        back = c.wav(u.id)
    assert abs(len(back) - len(w)) <= 2


def test_two_field_metadata_with_quotes(tmp_path):
    from ebtk.tts.audio import save_wav
    from ebtk.tts.dataset import LJSpeechCorpus

    (tmp_path / "metadata.csv").write_text('a1|He said "hi" to Dr. Who in 1999.\n', encoding="utf-8")
    save_wav(tmp_path / "wavs" / "a1.wav", np.zeros(4000, np.float32))
    c = LJSpeechCorpus(tmp_path)
    assert c.items[0].text == 'He said "hi" to Dr. Who in 1999.'
    assert c.items[0].normalized == 'He said "hi" to Doctor Who in nineteen ninety-nine.'


@needs_flite
def test_mel_cache_and_splits(corpus_dir, tmp_path):
    from ebtk.tts.dataset import LJSpeechCorpus

    d = _copy(corpus_dir, tmp_path / "cache")
    c = LJSpeechCorpus(d)
    uid = c.ids[0]
    m = c.mel(uid)
    assert m.shape == (80, len(c.wav(uid)) // 256 + 1)
    assert torch.equal(m, mel_spectrogram(torch.from_numpy(c.wav(uid))))
    files = list((d / ".ebtk_cache").rglob("*.npy"))
    assert len(files) == 1
    assert torch.equal(LJSpeechCorpus(d).mel(uid), m)  # served from disk
    # editing the wav invalidates the entry
    wav_path = c[uid].wav_path
    sf.write(str(wav_path), np.zeros(22050, np.float32), 22050, subtype="PCM_16")
    os.utime(wav_path, ns=(time.time_ns(), time.time_ns() + 10**9))
    m2 = c.mel(uid)
    assert m2.shape == (80, 22050 // 256 + 1) and list((d / ".ebtk_cache").rglob("*.npy")) != files

    s = c.splits(val=0.2, test=1, seed=0)
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (7, 2, 1)
    assert sorted(s["train"] + s["val"] + s["test"]) == sorted(c.ids)
    assert (d / "splits" / "val.txt").read_text().split() == s["val"]
    assert LJSpeechCorpus(d).splits(val=0.2, test=1, seed=0) == s
    assert c.splits(val=0.2, test=1, seed=1) != s
    with pytest.raises(EbtkError):
        c.splits(val=5, test=5)


def _metadata_only(d, texts):
    """An LJSpeech-layout metadata.csv of `texts` (normalised as the corpus maker does); splits need no wavs."""
    from ebtk.tts.text import normalize_text

    d.mkdir(parents=True, exist_ok=True)
    (d / "metadata.csv").write_text("".join(f"U{k:05d}|{t}|{normalize_text(t)}\n" for k, t in enumerate(texts)),
                                    encoding="utf-8")
    return d


def test_unseen_words_split_holds_words_absent_from_training(tmp_path):
    """Computed from the corpus itself: every unseen-words sentence has a word that no training sentence has,
    and no held-out sentence is a training sentence."""
    from ebtk.tts.corpus import make_sentences
    from ebtk.tts.dataset import UNSEEN, LJSpeechCorpus, vocabulary, words

    c = LJSpeechCorpus(_metadata_only(tmp_path / "c", make_sentences(1000, 0)))
    s = c.splits(val=50, test=100, seed=0, unseen=100)
    assert list(s) == ["train", "val", "test", UNSEEN]
    assert [len(s[k]) for k in s] == [750, 50, 100, 100]
    assert sorted(sum(s.values(), [])) == sorted(c.ids)
    train_words = vocabulary([c[i].normalized for i in s["train"]])
    for i in s[UNSEEN]:
        assert set(words(c[i].normalized)) - train_words, c[i].normalized
    train_texts = {c[i].normalized for i in s["train"]}
    assert not any(c[i].normalized in train_texts for k in ("val", "test", UNSEEN) for i in s[k])
    assert (tmp_path / "c" / "splits" / f"{UNSEEN}.txt").read_text().split() == s[UNSEEN]
    assert LJSpeechCorpus(tmp_path / "c").splits(val=50, test=100, seed=0, unseen=100) == s  # read back
    other = c.splits(val=50, test=100, seed=1, unseen=100)
    assert other[UNSEEN] != s[UNSEEN] and set(other[UNSEEN]).isdisjoint(other["train"])
    # without `unseen` the splits are those of before (marker and draw unchanged), with no unseen-words file
    plain = c.splits(val=50, test=100, seed=0)
    assert list(plain) == ["train", "val", "test"] and not (tmp_path / "c" / "splits" / f"{UNSEEN}.txt").exists()


def test_held_out_sentences_never_appear_in_training(tmp_path):
    from ebtk.tts.dataset import UNSEEN, LJSpeechCorpus

    texts = [f"The {w} was on the table." for w in ("cup", "pen", "key", "map", "box")] * 6 + ["A zebra sang."]
    c = LJSpeechCorpus(_metadata_only(tmp_path / "d", texts))
    s = c.splits(val=2, test=2, seed=0, unseen=1)
    held = {c[i].normalized for k in ("val", "test", UNSEEN) for i in s[k]}
    assert held.isdisjoint(c[i].normalized for i in s["train"])
    assert len(s["val"]) >= 2 and len(s["test"]) >= 2 and sorted(sum(s.values(), [])) == sorted(c.ids)
    assert [c[i].text for i in s[UNSEEN]] == ["A zebra sang."]  # the only sentence with a word of its own
    with pytest.raises(EbtkError, match="lower data.n_unseen"):
        c.splits(val=2, test=2, seed=0, unseen=2)


def test_user_split_files_are_kept_when_unseen_is_asked(tmp_path):
    from ebtk.tts.dataset import LJSpeechCorpus

    d = _metadata_only(tmp_path / "u", [f"Sentence number {k} is here." for k in range(8)])
    (d / "splits").mkdir()
    for name, ids in (("train", "U00000 U00001 U00002 U00003 U00004"), ("val", "U00005"), ("test", "U00006 U00007")):
        (d / "splits" / f"{name}.txt").write_text(ids.replace(" ", "\n") + "\n")
    s = LJSpeechCorpus(d).splits(val=1, test=1, unseen=1)
    assert s == {"train": [f"U0000{k}" for k in range(5)], "val": ["U00005"], "test": ["U00006", "U00007"]}


@needs_flite
def test_corpus_made_before_text_existed_is_still_reused(tmp_path):
    from ebtk.tts.corpus import make_corpus

    d = make_corpus(tmp_path / "g", n=2, seed=0, text="grammar", workers=1)
    info = json.loads((d / "corpus.json").read_text())
    del info["text"]  # as corpora made before the broad corpus record themselves
    (d / "corpus.json").write_text(json.dumps(info))
    before = (d / "metadata.csv").stat().st_mtime_ns
    assert make_corpus(d, n=2, seed=0, text="grammar", workers=1) == d
    assert (d / "metadata.csv").stat().st_mtime_ns == before
    with pytest.raises(EbtkError, match="not empty"):
        make_corpus(d, n=2, seed=0, workers=1)  # the mixed text is another corpus


@needs_flite
def test_read_only_corpus_uses_user_cache(corpus_dir, tmp_path, monkeypatch):
    from ebtk.tts.dataset import LJSpeechCorpus

    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    d = _copy(corpus_dir, tmp_path / "ro")
    monkeypatch.setenv("EBTK_CACHE_DIR", str(tmp_path / "usercache"))
    os.chmod(d, 0o555)
    try:
        c = LJSpeechCorpus(d)
        c.mel(c.ids[0])
        c.splits()
        assert list((tmp_path / "usercache").rglob("*.npy")) and list((tmp_path / "usercache").rglob("train.txt"))
    finally:
        os.chmod(d, 0o755)


# ------------------------------------------------------------------------------------------------- text
def test_normalize_text():
    from ebtk.tts.text import normalize_text

    assert normalize_text("Dr. Smith paid $5 on 3 May 2021.") == \
        "Doctor Smith paid five dollars on the third of May twenty twenty-one."
    assert normalize_text("Mr. Lee lives at 12 Oak St. near St. Paul's, etc.") == \
        "Mister Lee lives at twelve Oak Street near Saint Paul's, et cetera."
    assert normalize_text("It cost $3.50, i.e. 12.5% of 1,200.") == \
        "It cost three dollars and fifty cents, that is twelve point five percent of one thousand two hundred."
    assert normalize_text("The 21st game began at 3:05 pm on May 2nd, 1999.") == \
        "The twenty-first game began at three oh five p m on May second, nineteen ninety-nine."
    assert normalize_text("In the 1990s,   2005 and 1900 it was -4 degrees.") == \
        "In the nineteen nineties, two thousand five and nineteen hundred it was minus four degrees."
    assert normalize_text("1st, 2nd, 3rd, 4th, 11th, 12th, 100th") == \
        "first, second, third, fourth, eleventh, twelfth, one hundredth"


def test_text_frontend_encode_and_state():
    from ebtk.tts.text import DEFAULT_SYMBOLS, TextFrontend

    f = TextFrontend()
    assert f.symbols[0] == "_" and f.symbols == DEFAULT_SYMBOLS
    ph = f.phonemize(["Hello, world!", "Is it raining?"])
    assert ph[0].endswith("!") and "," in ph[0] and "ˈ" in ph[0] and ph[1].endswith("?")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ordinary English encodes without dropping anything
        ids = f.encode("Dr. Smith paid $5 on 3 May 2021?")
        batch = f.encode_batch(["Hello there.", "Dr. Smith paid $5 on 3 May 2021?"])
    assert batch[1] == ids and all(0 < i < len(f.symbols) for i in ids)
    assert "dˈɑːktɚ" in f.decode(ids)
    g = TextFrontend.from_state_dict(json.loads(json.dumps(f.state_dict())))
    assert g.symbols == f.symbols and g.encode("Hello there.") == batch[0]


def test_text_frontend_unknown_symbols():
    from ebtk.tts.text import TextFrontend

    small = TextFrontend(symbols=["_", " ", "h", "ə", "l", "o", "ʊ"])
    with pytest.warns(UserWarning, match="dropped unknown"):
        ids = small.encode("hello there")
    assert ids and max(ids) < 7
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning next to the error: the error line says it all
        with pytest.raises(EbtkError, match="no known symbols"):
            small.encode("Zzz?")
        with pytest.raises(EbtkError, match="no known symbols"):
            TextFrontend().encode("☃ ♪ 日本語")  # espeak would read these out as "snowman", "Chinese letter"
        assert TextFrontend().encode("Café naïve") == TextFrontend().encode("Cafe naive")  # accents folded
    with pytest.warns(UserWarning, match="dropped unknown symbols \\['☃'\\]"):
        assert TextFrontend().encode("hello ☃ there") == TextFrontend().encode("hello there")
    with pytest.raises(EbtkError, match="no known symbols"):
        TextFrontend().encode("   ")
    with pytest.raises(EbtkError, match="pad"):
        TextFrontend(symbols=["a", "b"])


@needs_flite
def test_cli_corpus_make_and_check(run_cli, tmp_path):
    from ebtk.tts.corpus import make_sentences

    code, out, err = run_cli("corpus", "make", tmp_path / "c", "--n", "2", "--seed", "1", "--workers", "1")
    assert code == 0 and "2 utterances" in out and "distinct words" in out, err
    assert len(list((tmp_path / "c" / "wavs").glob("*.wav"))) == 2
    texts = [line.split("|")[1] for line in (tmp_path / "c" / "metadata.csv").read_text().splitlines()]
    assert texts == make_sentences(2, 1)  # the command draws its texts with make_sentences
    code, out, err = run_cli("corpus", "make", tmp_path / "g", "--n", "2", "--seed", "1", "--text", "grammar")
    texts = [line.split("|")[1] for line in (tmp_path / "g" / "metadata.csv").read_text().splitlines()]
    assert code == 0 and texts == make_sentences(2, 1, text="grammar"), err
    code, out, _ = run_cli("corpus", "check", tmp_path / "c", "--strict")
    assert code == 0 and out.startswith("ok: 2 utterances")
    code, _, err = run_cli("corpus", "check", tmp_path)
    assert code == 2 and err.startswith("error:") and "metadata.csv" in err
