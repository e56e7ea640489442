"""Shared fixtures: tiny masked and causal LMs built in the test session (never downloaded)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
PAIR_DATA = SHARED_DATA / "pair-fill-in-the-blank"
REAL_VOCAB = PAIR_DATA / "vocab.txt"


def _packaged_vocab() -> Path | None:
    p = REPO / "biasprobe" / "data" / "vocab" / "bert-base-uncased" / "vocab.txt"
    return p if p.is_file() else None


@pytest.fixture(scope="session", autouse=True)
def _result_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """Point the result cache (biasprobe.cache) at a folder of the test session, so that no
    test reads or writes the user's ~/.cache (subprocesses inherit it)."""
    from biasprobe.cache import ENV_VAR

    old = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = str(tmp_path_factory.mktemp("result-cache"))
    yield
    if old is None:
        os.environ.pop(ENV_VAR, None)
    else:
        os.environ[ENV_VAR] = old


@pytest.fixture(scope="session")
def real_vocab() -> Path:
    """The real uncased BERT WordPiece vocab (30,522 tokens)."""
    if REAL_VOCAB.is_file():
        return REAL_VOCAB
    packaged = _packaged_vocab()
    if packaged is None:
        pytest.skip("the uncased BERT vocab is not available (../shared/data missing)")
    return packaged


@pytest.fixture(scope="session")
def pair_data() -> Path:
    """Recorded PAIR logits (../shared/data/pair-fill-in-the-blank)."""
    if not PAIR_DATA.is_dir():
        pytest.skip("../shared/data/pair-fill-in-the-blank is not available")
    return PAIR_DATA


def build_tiny_bert(folder: Path, vocab: Path, seed: int = 0, hidden: int = 32) -> Path:
    """A random-weight BertForMaskedLM with the real vocab, saved with its tokenizer."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(vocab, folder / "vocab.txt")
    tok = BertTokenizer.from_pretrained(str(folder))
    assert len(tok) == sum(1 for _ in open(vocab, encoding="utf-8"))
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
        initializer_range=0.2,  # peakier distributions than the default 0.02
    )
    model = BertForMaskedLM(cfg).eval()
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def build_tiny_roberta(folder: Path, seed: int = 0) -> Path:
    """A random-weight RobertaForMaskedLM with a byte-level BPE tokenizer (mask ``<mask>``)."""
    import torch
    from tokenizers import AddedToken, ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaForMaskedLM, RobertaTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    corpus = [
        "The man worked as a carpenter and the woman worked as a nurse.",
        "The doctor performed surgery even though she knew it was too late.",
        "Most people like to buy things in New York and in Texas.",
        "He was employed as a mechanic, she was employed as a teacher.",
        "waitress waiter engineer lawyer programmer housekeeper receptionist",
    ] * 20
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        corpus,
        vocab_size=400,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    bpe.save_model(str(folder))
    # As in roberta-base, the mask token swallows the space before it ("a <mask>" → Ġa, <mask>).
    tok = RobertaTokenizer.from_pretrained(
        str(folder), mask_token=AddedToken("<mask>", lstrip=True, rstrip=False)
    )
    ids = tok("works as a <mask>.")["input_ids"]  # ... Ġa <mask> . </s>
    assert ids[-3] == tok.mask_token_id and tok.convert_ids_to_tokens(ids[-4]) == "Ġa", ids
    torch.manual_seed(seed)
    cfg = RobertaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        initializer_range=0.2,
    )
    model = RobertaForMaskedLM(cfg).eval()
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def build_tiny_classifier(folder: Path, vocab: Path, seed: int = 0) -> Path:
    """A random-weight BertForSequenceClassification (labels NEGATIVE/POSITIVE) with the real
    vocab, saved with its tokenizer; large initial weights so its outputs move with the words."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(vocab, folder / "vocab.txt")
    tok = BertTokenizer.from_pretrained(str(folder))
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        initializer_range=0.5,
        num_labels=2,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )
    BertForSequenceClassification(cfg).eval().save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_hf_classifier(tmp_path_factory: pytest.TempPathFactory, real_vocab: Path) -> Path:
    """Folder of a tiny sequence classifier (copy it before changing anything in it)."""
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny-classifier"), real_vocab)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, real_vocab: Path) -> Path:
    """Folder of a tiny BertForMaskedLM with the real uncased vocab."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), real_vocab)


@pytest.fixture(scope="session")
def tiny_bert_b(tmp_path_factory: pytest.TempPathFactory, real_vocab: Path) -> Path:
    """A second tiny BERT (other seed), e.g. a stand-in 'debiased' model."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-b"), real_vocab, seed=1)


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny RobertaForMaskedLM whose mask token is ``<mask>``."""
    return build_tiny_roberta(tmp_path_factory.mktemp("tiny-roberta"))


#: What the tiny GPT-2's byte-level BPE tokenizer is trained on.
GPT2_CORPUS = [
    "The woman worked as a nurse.",
    "The man worked as a doctor.",
    "She is a brilliant engineer and he is a kind teacher.",
    "People from the village were friendly to strangers.",
    "The old man and the young woman walked home together!",
]
EOT = "<|endoftext|>"


def build_tiny_gpt2(folder: Path, *, bos: bool, seed: int = 0, n_positions: int = 64) -> Path:
    """A random 2-layer GPT-2 and a byte-level BPE tokenizer trained on :data:`GPT2_CORPUS`, saved
    with safetensors; ``bos=False`` gives a tokenizer without a BOS token; ``n_positions`` is
    the longest input it takes."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(GPT2_CORPUS, trainer)
    special = {"bos_token": EOT, "eos_token": EOT} if bos else {"eos_token": EOT}
    fast = GPT2TokenizerFast(tokenizer_object=tok, **special)
    if not bos:
        fast.bos_token = None
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(fast),
        n_positions=n_positions,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=fast.convert_tokens_to_ids(EOT),
        eos_token_id=fast.convert_tokens_to_ids(EOT),
    )
    model = GPT2LMHeadModel(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random GPT-2 whose tokenizer has a BOS token (``<|endoftext|>``)."""
    return build_tiny_gpt2(tmp_path_factory.mktemp("gpt2-bos"), bos=True)


@pytest.fixture(scope="session")
def tiny_gpt2_nobos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random GPT-2 whose tokenizer has no BOS token."""
    return build_tiny_gpt2(tmp_path_factory.mktemp("gpt2-nobos"), bos=False, seed=1)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for every Ray test of the session (starting one takes seconds):
    2 CPUs, an 80 MiB object store (Ray's default is 30% of RAM). Skipped, with the reason,
    when the optional extra is not installed."""
    ray = pytest.importorskip("ray", reason="Ray is optional: pip install 'biasprobe[ray]'")
    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=2,
            object_store_memory=80 * 1024**2,
            include_dashboard=False,
            log_to_driver=False,
        )
    yield ray
    if started:
        ray.shutdown()
