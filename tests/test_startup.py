"""Model start-up: the display vocabulary without one decode call per id, and the weights'
sha256 memoized in the process (keyed so that a changed file is never served an old digest)."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from biasprobe import hub
from biasprobe.backends.hf import _single_token_rule, decode_each, load_hf_masked_lm


def reference_vocab(tok, size: int) -> list[str]:
    """The display vocabulary as it was computed before: one ``batch_decode`` of every id."""
    raw = tok.convert_ids_to_tokens(list(range(min(size, len(tok)))))
    shown = tok.batch_decode([[i] for i in range(len(raw))])
    vocab = [(s.strip() or str(r)) for s, r in zip(shown, raw)]
    vocab += [f"<id {i}>" for i in range(len(vocab), size)]
    return vocab


@pytest.fixture
def decoded_slowly(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the ids that go through ``batch_decode`` (patched on the base class, so that the
    tokenizer's decode path still counts as transformers' own)."""
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    seen: list[int] = []
    original = PreTrainedTokenizerBase.batch_decode

    def counting(self, sequences, *args, **kwargs):
        seen.extend(i for seq in sequences for i in seq)
        return original(self, sequences, *args, **kwargs)

    monkeypatch.setattr(PreTrainedTokenizerBase, "batch_decode", counting)
    return seen


def _all_ids_each(tok) -> tuple[list, list[str]]:
    raw = tok.convert_ids_to_tokens(list(range(len(tok))))
    return raw, tok.batch_decode([[i] for i in range(len(raw))])


# -- display vocabulary ------------------------------------------------------------------------
def test_backend_vocab_equals_batch_decode_on_the_real_uncased_vocab(tiny_bert, decoded_slowly):
    backend = load_hf_masked_lm(str(tiny_bert), device="cpu")
    tok = backend.tokenizer
    assert _single_token_rule(tok) == "wordpiece"
    assert len(decoded_slowly) == 0  # no id of the real vocab needed a decode call
    expected = reference_vocab(tok, len(backend.vocab))
    assert len(expected) == 30522
    assert backend.vocab == expected
    assert backend.vocab[tok.convert_tokens_to_ids("##s")] == "##s"
    assert backend.vocab[tok.mask_token_id] == "[MASK]"


@pytest.mark.parametrize("cleanup", [False, True])
def test_wordpiece_with_added_tokens_and_cleanup(tiny_bert, decoded_slowly, cleanup):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert), clean_up_tokenization_spaces=cleanup)
    assert tok.clean_up_tokenization_spaces is cleanup
    tok.add_tokens(["new york", "co-op", "what ?", "do not"])
    tok.add_special_tokens({"additional_special_tokens": ["<ent>"]})
    raw, reference = _all_ids_each(tok)
    del decoded_slowly[:]
    got = decode_each(tok, raw)
    assert got == reference
    # Only the tokens holding a space were decoded one by one.
    assert sorted(decoded_slowly) == sorted(i for i, r in enumerate(raw) if " " in r)
    assert len(decoded_slowly) == 3
    if cleanup:  # the clean-up acted on one of them, so the slow path was needed
        assert got[tok.convert_tokens_to_ids("what ?")] == "what?"
    assert reference_vocab(tok, len(tok) + 3)[-4:] == [
        "<ent>",
        *(f"<id {i}>" for i in range(len(tok), len(tok) + 3)),
    ]


@pytest.mark.parametrize("cleanup,force_bpe", [(False, False), (True, False), (True, True)])
def test_byte_level_bpe(tiny_roberta, decoded_slowly, cleanup, force_bpe):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(
        str(tiny_roberta),
        clean_up_tokenization_spaces=cleanup,
        clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output=force_bpe,
    )
    assert _single_token_rule(tok) == "byte-level"
    tok.add_tokens(["x .", "Ġ's", "plain"])
    raw, reference = _all_ids_each(tok)
    del decoded_slowly[:]
    assert decode_each(tok, raw) == reference
    fast = len(raw) - len(decoded_slowly)
    assert fast > len(raw) // 2, (fast, len(raw))
    # Non-ASCII byte stand-ins ("Ċ" = newline, "Ã" = half of a UTF-8 character) go the slow way.
    for piece in ("Ċ", "Ã"):
        assert tok.convert_tokens_to_ids(piece) in decoded_slowly
    assert tok.convert_tokens_to_ids("Ġ's") in decoded_slowly  # " 's": clean-up could act
    if "Ġthe" in tok.get_vocab():
        assert tok.convert_tokens_to_ids("Ġthe") not in decoded_slowly


def _word_level_tokenizer(decoder=None):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[UNK]", "[MASK]", "a", "b c", "##x", ".", "▁up", "Ġb", "don ' t"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if decoder is not None:
        backend.decoder = decoder
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", mask_token="[MASK]")


def test_no_decoder_joins_one_token(decoded_slowly):
    tok = _word_level_tokenizer()
    assert _single_token_rule(tok) == "join"
    for cleanup in (False, True):
        tok.clean_up_tokenization_spaces = cleanup
        raw, reference = _all_ids_each(tok)
        del decoded_slowly[:]
        assert decode_each(tok, raw) == reference
        assert sorted(decoded_slowly) == [3, 8]  # "b c" and "don ' t"


def test_other_decoders_take_the_slow_path(decoded_slowly):
    from tokenizers import decoders

    tok = _word_level_tokenizer(decoders.Metaspace())
    assert _single_token_rule(tok) is None
    raw, reference = _all_ids_each(tok)
    del decoded_slowly[:]
    got = decode_each(tok, raw)
    assert got == reference
    assert got[6] == "up"  # the Metaspace decoder dropped "▁"
    assert sorted(decoded_slowly) == list(range(len(raw)))


def test_a_tokenizer_with_its_own_decode_is_decoded_its_way(tiny_bert):
    from transformers import BertTokenizer

    class Shouting(BertTokenizer):
        def _decode(self, token_ids, *args, **kwargs):
            return super()._decode(token_ids, *args, **kwargs).upper()

    tok = Shouting.from_pretrained(str(tiny_bert))
    assert _single_token_rule(tok) is None
    raw, reference = _all_ids_each(tok)
    got = decode_each(tok, raw)
    assert got == reference
    assert raw[7592] == "hello" and got[7592] == "HELLO"

    plain = BertTokenizer.from_pretrained(str(tiny_bert))
    plain.decode = lambda *a, **k: "patched"  # an instance's own decode counts too
    assert _single_token_rule(plain) is None


# -- sha256 memo ------------------------------------------------------------------------------
@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A fresh memo, and the files sha256_file opens."""
    monkeypatch.setattr(hub, "_SHA256_MEMO", {})
    seen: list[str] = []

    def counting_open(path, *args, **kwargs):
        seen.append(str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(hub, "open", counting_open, raising=False)
    return seen


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make a file just written count as settled: a 50 ms window instead of 2 s, waited out."""
    monkeypatch.setattr(hub, "_RACY_NS", 50_000_000)
    time.sleep(0.1)


def test_sha256_memo_serves_a_second_call_without_reading(tmp_path, monkeypatch, opened):
    f = tmp_path / "model.safetensors"
    data = os.urandom(3 << 20) + b"tail"  # several 1 MiB blocks and a partial one
    f.write_bytes(data)
    _settle(monkeypatch)
    assert hub.sha256_file(f) == _sha(data)
    assert len(opened) == 1
    assert hub.sha256_file(f) == _sha(data)
    assert hub.sha256_file(str(f)) == _sha(data)
    link = tmp_path / "link.safetensors"
    link.symlink_to(f)
    assert hub.sha256_file(link) == _sha(data)  # the same real path
    assert len(opened) == 1
    assert list(hub._SHA256_MEMO) == [hub._file_key(os.path.realpath(f), f.stat())]


def test_sha256_memo_rewritten_file_same_size_and_mtime(tmp_path, monkeypatch, opened):
    f = tmp_path / "weights.bin"
    old = b"a" * 5000
    f.write_bytes(old)
    _settle(monkeypatch)
    assert hub.sha256_file(f) == _sha(old)
    st = f.stat()
    new = b"b" * 5000
    with open(f, "r+b") as fh:  # in place: same inode
        fh.write(new)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    st2 = f.stat()
    assert (st2.st_ino, st2.st_size, st2.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    assert st2.st_ctime_ns != st.st_ctime_ns
    assert hub.sha256_file(f) == _sha(new)
    assert len(opened) == 2
    # Replaced by another file (new inode) with the same size and mtime: read again too.
    g = tmp_path / "other.bin"
    g.write_bytes(old)
    os.utime(g, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(g, f)
    assert hub.sha256_file(f) == _sha(old)
    assert len(opened) == 3


def test_sha256_of_a_just_written_file_is_not_memoized(tmp_path, opened):
    assert hub._RACY_NS == 2_000_000_000
    f = tmp_path / "fresh.bin"
    f.write_bytes(b"fresh")
    assert hub.sha256_file(f) == _sha(b"fresh")
    assert hub.sha256_file(f) == _sha(b"fresh")
    assert len(opened) == 2 and hub._SHA256_MEMO == {}


def test_sha256_of_a_missing_file_raises(tmp_path, opened):
    with pytest.raises(FileNotFoundError):
        hub.sha256_file(tmp_path / "missing.bin")
    assert hub._SHA256_MEMO == {}
