"""Resume when templates share a sentence (one baseline against several groups): the resumed
run computes at most the sentences the interrupted run never computed, plus one chunk."""

from __future__ import annotations

from pathlib import Path

import pytest

import biasprobe
from biasprobe.probes import load_probe_set
from tests.test_cache import assert_same_result

JOBS = [f"w{i}" for i in range(16)]
SHARED = f"""\
name: shared-baseline
version: 1
description: one baseline sentence against two groups
source: written for this test
lexicons:
  job: [{", ".join(JOBS)}]
pairs:
  - id: women
    template: "the [man|woman] was a {{job}} and [MASK] ."
    groups: [men, women]
    minoritized: women
  - id: girls
    template: "the [man|girl] was a {{job}} and [MASK] ."
    groups: [men, girls]
    minoritized: girls
"""


def test_resume_with_shared_sentences_computes_only_what_is_unfinished(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from biasprobe.backends.hf import HFMaskedLM
    from biasprobe.tasks import fillmask_scoring as runner_module

    chunk = 8
    monkeypatch.setattr(runner_module, "SENTENCE_CHUNK", chunk)
    path = tmp_path / "shared.yaml"
    path.write_text(SHARED, encoding="utf-8")
    ps = load_probe_set(path)
    sentences = list(dict.fromkeys(s for it in ps.items for s in it.sentences))
    assert len(sentences) == 48 and len(ps.items) == 32  # the "the man …" sides are shared
    kw = {"device": "cpu", "batch_size": 4, "n_bootstrap": 100}
    ref = biasprobe.run(ps, [str(tiny_bert)], cache=False, **kw)

    seen: list[str] = []
    calls = {"n": 0, "stop_at": 11}  # 12 forward passes of 4 sentences: stop at about 80%
    real = HFMaskedLM.mask_logprobs

    def counted(self, batch):
        calls["n"] += 1
        if calls["n"] == calls["stop_at"]:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the run
        seen.extend(batch)
        return real(self, batch)

    monkeypatch.setattr(HFMaskedLM, "mask_logprobs", counted)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        biasprobe.run(ps, [str(tiny_bert)], cache=cache, **kw)
    computed_before = set(seen)
    assert 0.7 * len(sentences) <= len(computed_before) < len(sentences)
    unfinished = len(sentences) - len(computed_before)

    seen.clear()
    calls.update(n=0, stop_at=-1)
    again = biasprobe.run(ps, [str(tiny_bert)], cache=cache, **kw)
    assert_same_result(again, ref)  # the numbers of an uninterrupted, uncached run
    # only the unfinished sentences, plus at most the one chunk the interruption cut
    assert len(seen) <= unfinished + chunk, (len(seen), unfinished)
    stats = again.meta["models"][0]["info"]["cache"]["by_kind"]
    assert stats["pair"]["hits"] > 0 and stats["mask"]["misses"] == len(seen)
