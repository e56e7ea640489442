"""Continued masked-LM training of ``biasprobe debias``: load, train, checkpoint, resume, save.

The base model is found the way every biasprobe model is (:mod:`biasprobe.hub`: a local folder,
the Hugging Face cache, or the hub; no ``trust_remote_code`` unless asked) and must be a complete
masked LM. Training is plain MLM (:mod:`biasprobe.debias.data`) with AdamW, a linear warm-up and
decay of the learning rate and gradient clipping at 1.0.

Resume: every ``checkpoint_every`` steps the model, optimizer and scheduler states, the torch RNG
state, the step (which is the data position) and the loss log are written atomically to
``OUT.resume/`` (a folder next to the output with biasprobe's manifest). The same command run
again continues from there and ends with the same weights as an uninterrupted run: every random
draw of a step (batch order, masks, dropout) is seeded from the run's seed and the step.
The finished checkpoint is written to a staging folder and renamed to ``OUT``; then the resume
folder is removed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from biasprobe.debias.data import (
    METHODS,
    batch_indices,
    build_texts,
    mask_tokens,
    read_corpus,
    step_seed,
)
from biasprobe.errors import ModelLoadError, UsageError
from biasprobe.fsio import (
    atomic_write_json,
    atomic_write_text,
    check_output_folder,
    foreign_files,
    read_manifest,
    replace_dir,
    shared_mode,
    staging_dir,
    write_manifest,
)

__all__ = ["DROPOUT", "DebiasConfig", "debias", "evaluate_mlm", "load_base"]

#: Zari bert-dropout / bias-bench: attention-probability and hidden dropout of the dropout recipe.
DROPOUT = {"attention": 0.15, "hidden": 0.20}
KIND = "debias"
RESUME_KIND = "debias-resume"
_TMP_STATE = ".state.pt.tmp"
#: Config attribute names of (attention, hidden) dropout, by model family.
_DROPOUT_ATTRS = (
    ("attention_probs_dropout_prob", "hidden_dropout_prob"),  # BERT, RoBERTa, ELECTRA, ...
    ("attention_dropout", "dropout"),  # DistilBERT
)
ProgressFn = Callable[[int, int, float], None]


@dataclass(frozen=True)
class DebiasConfig:
    """One debias run. Everything but ``out``, ``overwrite``, ``checkpoint_every`` and ``device``
    defines the job: resuming requires the same values."""

    method: str  # cda, dropout or none (the control: same training, nothing changed)
    model: str  # hub id or local folder of the base masked LM
    corpus: str  # text file or folder of .txt files
    out: str  # output checkpoint folder
    axis: str = "gender"  # CDA word-pair list (biasprobe/data/cda/AXIS.tsv)
    word_list: str | None = None  # a TSV of word pairs replacing the axis's list
    neutral: str = "keep"  # CDA: keep or drop sentences without attribute words
    steps: int = 1000  # optimizer steps
    lr: float = 5e-5  # peak learning rate
    batch_size: int = 16  # sentences per step
    seed: int = 0  # seeds batch order, masks, dropout
    max_length: int = 128  # tokens per sentence (longer ones are cut)
    warmup: float = 0.1  # fraction of steps with a linearly rising learning rate
    weight_decay: float = 0.01  # AdamW, not on biases and LayerNorm weights
    attention_dropout: float = DROPOUT["attention"]  # dropout recipe only
    hidden_dropout: float = DROPOUT["hidden"]  # dropout recipe only
    revision: str | None = None  # hub revision of the base
    trust_remote_code: bool = False
    checkpoint_every: int = 200  # steps between resume checkpoints
    overwrite: bool = False  # replace an OUT folder biasprobe wrote
    device: str | None = None  # auto, cpu, cuda, ...

    def check(self) -> None:
        """Raises: UsageError naming the option that is out of range."""
        if self.method not in METHODS:
            raise UsageError(f"--method {self.method!r}: expected one of {', '.join(METHODS)}")
        for name, value, low in (
            ("--steps", self.steps, 1),
            ("--batch-size", self.batch_size, 1),
            ("--max-length", self.max_length, 8),
            ("--checkpoint-every", self.checkpoint_every, 1),
        ):
            if value < low:
                raise UsageError(f"{name} {value}: must be at least {low}")
        if not (0 < self.lr < 1):
            raise UsageError(f"--lr {self.lr}: expected a learning rate in (0, 1)")
        if not (0 <= self.warmup < 1):
            raise UsageError(f"--warmup {self.warmup}: expected a fraction in [0, 1)")
        if not (0 <= self.seed < 2**32):
            raise UsageError(f"--seed {self.seed}: expected 0 … 2**32 − 1")
        if self.method == "cda" and self.word_list is None:
            from biasprobe.sentiment.cda import cda_dir

            axes = sorted(p.stem for p in cda_dir().glob("*.tsv"))
            if self.axis not in axes:
                raise UsageError(
                    f"--axis {self.axis!r}: no word-pair list for axis {self.axis!r}; "
                    f"available: {', '.join(axes)} (or give one with --word-list)"
                )
        for name, p in (("attention", self.attention_dropout), ("hidden", self.hidden_dropout)):
            if not (0 <= p < 1):
                raise UsageError(f"{name} dropout {p}: expected a probability in [0, 1)")

    def job(self) -> dict[str, Any]:
        skip = {"out", "overwrite", "checkpoint_every", "device"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}


def _set_dropout(config: Any, attention: float, hidden: float) -> dict[str, float]:
    for att, hid in _DROPOUT_ATTRS:
        if hasattr(config, att) and hasattr(config, hid):
            setattr(config, att, attention)
            setattr(config, hid, hidden)
            return {att: attention, hid: hidden}
    raise UsageError(
        f"--method dropout: model type {getattr(config, 'model_type', '?')!r} has no known "
        "dropout settings (attention_probs_dropout_prob/hidden_dropout_prob or "
        "attention_dropout/dropout)"
    )


def load_base(cfg: DebiasConfig) -> tuple[Any, Any, dict[str, Any], dict[str, float]]:
    """Load the base masked LM (float32, train mode) and its tokenizer.

    Returns:
        model, tokenizer, provenance (``biasprobe.hub`` info) and the dropout values set.

    Raises:
        ModelLoadError: not found, not loadable, not a complete masked LM, or a tokenizer that
            does not fit the model.
    """
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    from biasprobe.backends.hf import check_trained_weights, check_vocab_size
    from biasprobe.hub import quiet_transformers, record_commit, resolve_model_source

    quiet_transformers()
    src = resolve_model_source(cfg.model, revision=cfg.revision)
    kw = {"revision": src.revision, "trust_remote_code": cfg.trust_remote_code, **src.kwargs}
    try:
        tokenizer = AutoTokenizer.from_pretrained(src.load_from, **kw)
        config = AutoConfig.from_pretrained(src.load_from, **kw)
    except Exception as e:
        raise ModelLoadError(
            f"{src.describe()} could not be loaded ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from None
    dropout = (
        _set_dropout(config, cfg.attention_dropout, cfg.hidden_dropout)
        if cfg.method == "dropout"
        else {}
    )
    try:
        model, loading = AutoModelForMaskedLM.from_pretrained(
            src.load_from, config=config, output_loading_info=True, **kw
        )
    except Exception as e:
        raise ModelLoadError(
            f"{src.describe()} could not be loaded as a masked LM ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''})"
        ) from None
    check_trained_weights(loading, src)
    record_commit(src, model.config)
    if tokenizer.mask_token is None:
        raise ModelLoadError(f"model {cfg.model!r} has no mask token: it is not a masked LM")
    check_vocab_size(tokenizer, model, src)
    return model.float(), tokenizer, src.info, dropout


def _encode(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    return [list(x) for x in ids]


def _collate(rows: list[list[int]], pad_id: int, special_ids: set[int]):
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        attn[i, : len(r)] = 1
    special = attn == 0
    for s in special_ids:
        special |= ids == s
    return ids, attn, special


class _HeadAtChosen:
    """Apply the LM head only at the chosen (masked) positions, not at every token.

    The vocabulary projection dominates the cost of a small masked LM (30,522 × hidden at every
    token); the loss needs it at the ~15% chosen positions only. A forward hook on the base
    model keeps the hidden states there (as :mod:`biasprobe.backends.hf` does for scoring);
    :meth:`check` compares the result with a plain forward pass and turns the hook off if they
    ever differ (a model whose head needs the whole sequence).
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.where = None
        self.enabled = True
        self.handle = model.base_model.register_forward_hook(self._keep)

    def _keep(self, module: Any, args: Any, output: Any) -> Any:
        if self.where is None:
            return None
        hidden = output[0]  # (B, T, H)
        picked = hidden[self.where].unsqueeze(0)  # (1, N, H)
        if isinstance(output, tuple):
            return (picked, *output[1:])
        output.last_hidden_state = picked
        return output

    def loss(self, inputs: Any, attn: Any, labels: Any) -> Any:
        """Mean cross-entropy at the positions whose label is not -100."""
        import torch.nn.functional as F

        chosen = labels != -100
        if not self.enabled:
            logits = self.model(input_ids=inputs, attention_mask=attn).logits  # (B, T, V)
            return F.cross_entropy(logits[chosen], labels[chosen])
        self.where = chosen
        try:
            logits = self.model(input_ids=inputs, attention_mask=attn).logits  # (1, N, V)
        finally:
            self.where = None
        return F.cross_entropy(logits[0], labels[chosen])

    def check(self, inputs: Any, attn: Any, labels: Any) -> bool:
        import torch

        was = self.model.training
        self.model.eval()
        with torch.no_grad():
            try:
                fast = float(self.loss(inputs, attn, labels))
            except Exception:
                fast = float("nan")
            self.enabled = False
            full = float(self.loss(inputs, attn, labels))
        self.model.train(was)
        self.enabled = math.isfinite(fast) and abs(fast - full) <= 1e-4 * max(1.0, abs(full))
        return self.enabled

    def close(self) -> None:
        self.handle.remove()


def _optimizer(model: Any, cfg: DebiasConfig):
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )
    warm = int(cfg.warmup * cfg.steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (cfg.steps - step) / max(1, cfg.steps - warm))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _resume_dir(out: Path) -> Path:
    return out.parent / f"{out.name}.resume"


def _job_diff(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    keys = sorted(set(stored) | set(current))
    return [
        f"{k}: {stored.get(k)!r} → {current.get(k)!r}"
        for k in keys
        if stored.get(k) != current.get(k)
    ]


def _open_resume(folder: Path, job: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state of this job in ``folder``, or None when there is none yet.

    Raises:
        UsageError: the folder is not biasprobe's, or holds another job.
    """
    import torch

    if not folder.exists():
        return None
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("kind") != RESUME_KIND:
        raise UsageError(
            f"resume folder {folder} exists and was not written by biasprobe debias; "
            "move it away or choose another --out"
        )
    try:
        stored = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = None
    if stored != job:
        diff = _job_diff(stored or {}, job)
        raise UsageError(
            f"resume folder {folder} holds an unfinished run of another job ("
            + "; ".join(diff[:6])
            + "); run the same command to resume it, or pass --restart to discard it"
        )
    state_file = folder / "state.pt"
    if not state_file.is_file():
        return None
    return torch.load(state_file, map_location="cpu", weights_only=True)


def _discard_resume(folder: Path) -> None:
    """Remove a resume folder biasprobe wrote (its manifest lists everything in it)."""
    import shutil

    if not folder.exists():
        return
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("kind") != RESUME_KIND or foreign_files(folder):
        raise UsageError(
            f"resume folder {folder} holds files biasprobe did not write; it is left alone "
            "(move it away or choose another --out)"
        )
    shutil.rmtree(folder)


def _save_state(folder: Path, job: dict[str, Any], state: dict[str, Any]) -> None:
    import torch

    if not folder.exists():  # the manifest first: a kill at any point leaves a folder it owns
        folder.mkdir(parents=True)
        write_manifest(folder, RESUME_KIND, job["method"], ["job.json", "state.pt", _TMP_STATE])
        atomic_write_json(folder / "job.json", job)
    tmp = folder / _TMP_STATE
    torch.save(state, tmp)
    os.replace(tmp, folder / "state.pt")


@dataclass
class DebiasResult:
    out: Path
    steps: int
    resumed_from: int
    final_loss: float
    card: dict[str, Any]


def _word_list_info(cfg: DebiasConfig, swapper: Any) -> dict[str, Any]:
    import hashlib

    from biasprobe.sentiment.cda import cda_dir

    path = Path(cfg.word_list) if cfg.word_list else cda_dir() / f"{cfg.axis}.tsv"
    data = path.read_bytes()
    return {
        "axis": cfg.axis,
        "file": str(path) if cfg.word_list else f"biasprobe/data/cda/{cfg.axis}.tsv",
        "sha256": hashlib.sha256(data).hexdigest(),
        "pairs": len(swapper.rows),
        "groups": swapper.k,
        "text": data.decode("utf-8"),
    }


def debias(
    cfg: DebiasConfig,
    *,
    progress: ProgressFn | None = None,
    restart: bool = False,
) -> DebiasResult:
    """Train the debiased twin of ``cfg.model`` and write it to ``cfg.out``.

    Args:
        cfg: the run.
        progress: called as ``progress(step, total, loss)`` after every step.
        restart: discard an unfinished run of another job in ``OUT.resume`` (biasprobe's only).

    Raises:
        UsageError: bad options, corpus or word list; ModelLoadError: the base cannot be used;
        OutputError / NotOwnedError: ``OUT`` cannot be (re)written.
    """
    import torch

    from biasprobe.device import resolve_device
    from biasprobe.sentiment.cda import load_swapper

    cfg.check()
    out = Path(cfg.out).expanduser().resolve()
    check_output_folder(out, cfg.overwrite, kinds=(KIND,), what="debias output folder")
    corpus = read_corpus(cfg.corpus)
    swapper = load_swapper(cfg.axis, cfg.word_list) if cfg.method == "cda" else None
    texts = build_texts(corpus.sentences, cfg.method, swapper, cfg.neutral)
    job = {**cfg.job(), "corpus_sha256": corpus.sha256}
    resume = _resume_dir(out)
    if restart:
        _discard_resume(resume)
    state = _open_resume(resume, job)

    dev = resolve_device(cfg.device)
    model, tokenizer, base_info, dropout = load_base(cfg)
    model.to(dev).train()
    base_id = base_info.get("files_sha256") or base_info.get("commit_hash")
    encoded = _encode(tokenizer, texts.texts, cfg.max_length)
    special_ids = set(tokenizer.all_special_ids)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    vocab_size = int(model.get_input_embeddings().weight.shape[0])
    opt, sched = _optimizer(model, cfg)
    losses: list[float] = []
    start = 0
    if state is not None:
        if state.get("base") != json.dumps(base_id, sort_keys=True):
            raise UsageError(
                f"resume folder {resume}: the base model's files changed since the run started; "
                "pass --restart to discard the unfinished run"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        losses = [float(x) for x in state["losses"]]
        start = int(state["step"])

    def checkpoint(step: int) -> None:
        _save_state(
            resume,
            job,
            {
                "step": step,
                "base": json.dumps(base_id, sort_keys=True),
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "rng": torch.get_rng_state(),
                "losses": torch.tensor(losses, dtype=torch.float64),
            },
        )

    head = _HeadAtChosen(model)
    for step in range(start, cfg.steps):
        rows = [encoded[i] for i in batch_indices(len(encoded), cfg.batch_size, cfg.seed, step)]
        ids, attn, special = _collate(rows, pad_id, special_ids)
        g = torch.Generator().manual_seed(step_seed(cfg.seed, step, 1))
        inputs, labels = mask_tokens(
            ids, special, mask_id=tokenizer.mask_token_id, vocab_size=vocab_size, generator=g
        )
        if not bool((labels != -100).any()):  # nothing drawn: predict the first real token
            first = (~special).nonzero()[0]
            labels[first[0], first[1]] = ids[first[0], first[1]]
        inputs, attn, labels = inputs.to(dev), attn.to(dev), labels.to(dev)
        if step == start:
            head.check(inputs, attn, labels)
        torch.manual_seed(step_seed(cfg.seed, step, 2))  # dropout
        loss = head.loss(inputs, attn, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise UsageError(f"the MLM loss became {value} at step {step + 1}; lower --lr")
        losses.append(value)
        if progress is not None:
            progress(step + 1, cfg.steps, value)
        done = step + 1
        if done < cfg.steps and done % cfg.checkpoint_every == 0:
            checkpoint(done)

    head.close()
    tail = losses[-min(len(losses), 50) :]
    final_loss = sum(tail) / len(tail)
    model.eval()
    card = _card(cfg, corpus, texts, base_info, dropout, final_loss, losses, swapper, start)
    with staging_dir(out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        if swapper is not None:
            atomic_write_text(tmp / "cda-word-pairs.tsv", card["word_list"].pop("text"))
        atomic_write_json(tmp / "debias.json", {**card, "losses": losses})
        atomic_write_text(tmp / "README.md", model_card(card))
        for f in tmp.iterdir():  # save_pretrained's files are private; follow the umask
            if f.is_file():
                f.chmod(shared_mode())
        write_manifest(tmp, KIND, f"{cfg.method}-{cfg.seed}")
        replace_dir(tmp, out)
    _discard_resume(resume)
    return DebiasResult(out, cfg.steps, start, final_loss, card)


def _versions() -> dict[str, str]:
    import torch
    import transformers

    from biasprobe.version import __version__

    return {
        "biasprobe": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


RECIPES = {
    "cda": (
        "Two-sided counterfactual data augmentation (Webster et al. 2020; as bias-bench): every "
        "corpus sentence holding a word of the {axis} list is kept and followed by its "
        "counterfactual twin (the words swapped; for a list of k groups, k - 1 twins, one per "
        "other group); then continued masked-LM training."
    ),
    "dropout": (
        "Raised dropout (Webster et al. 2020; Zari bert-dropout, bias-bench): attention dropout "
        "{attention}, hidden dropout {hidden}, written into config.json; then continued "
        "masked-LM training on the unchanged corpus."
    ),
    "none": (
        "Control: continued masked-LM training on the unchanged corpus with the base's own "
        "dropout (no debiasing), to compare with cda and dropout at the same budget."
    ),
}


def _card(cfg, corpus, texts, base_info, dropout, final_loss, losses, swapper, resumed) -> dict:
    base = {
        k: v
        for k, v in base_info.items()
        if k in ("requested", "source", "path", "revision", "commit_hash", "files_sha256")
    }
    card: dict[str, Any] = {
        "method": cfg.method,
        "recipe": RECIPES[cfg.method].format(
            axis=cfg.axis, attention=cfg.attention_dropout, hidden=cfg.hidden_dropout
        ),
        "base": base,
        "corpus": {
            "path": corpus.path,
            "sha256": corpus.sha256,
            "files": corpus.files,
            "sentences": len(corpus.sentences),
            "training_texts": len(texts.texts),
        },
        "training": {
            "steps": cfg.steps,
            "lr": cfg.lr,
            "batch_size": cfg.batch_size,
            "seed": cfg.seed,
            "max_length": cfg.max_length,
            "warmup": cfg.warmup,
            "weight_decay": cfg.weight_decay,
            "masking": "15% of tokens; 80% [MASK], 10% random, 10% unchanged",
            "optimizer": "AdamW, linear warm-up and decay, gradient norm clipped at 1.0",
            "resumed_from_step": resumed,
        },
        "final_mlm_loss": round(final_loss, 6),
        "final_mlm_loss_steps": min(len(losses), 50),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": _versions(),
    }
    if cfg.method == "cda":
        card["cda"] = {
            "neutral_sentences": cfg.neutral,
            "sentences_with_terms": texts.with_terms,
            "twins_added": texts.added,
            "neutral_dropped": texts.dropped,
        }
        card["word_list"] = _word_list_info(cfg, swapper)
    if dropout:
        card["dropout"] = dropout
    return card


def model_card(card: dict[str, Any]) -> str:
    """The README.md of the output folder (Hugging Face model-card front matter + text)."""
    base = card["base"]
    ident = (
        "; ".join(f"{k} sha256 {v}" for k, v in base.get("files_sha256", {}).items())
        or f"hub id {base.get('requested')} at revision {base.get('commit_hash') or base.get('revision') or 'unknown'}"
    )
    t, c = card["training"], card["corpus"]
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: fill-mask",
        "tags: [biasprobe, debiasing, " + card["method"] + "]",
        "---",
        "",
        (
            f"# Debiased masked LM ({card['method']}) made by `biasprobe debias`"
            if card["method"] != "none"
            else "# Masked LM trained further without debiasing (control), by `biasprobe debias`"
        ),
        "",
        "## Base model",
        f"- name: {base.get('requested')} ({base.get('source')})",
        f"- identity: {ident}",
        "",
        "## Recipe",
        card["recipe"],
        "",
    ]
    if "word_list" in card:
        w, cda = card["word_list"], card["cda"]
        lines += [
            "## Word list",
            f"- axis: {w['axis']}, {w['pairs']} lines of {w.get('groups', 2)} words (one per "
            f"group) from {w['file']} (sha256 {w['sha256']}), copied here as "
            "`cda-word-pairs.tsv`",
            f"- sentences with a listed word: {cda['sentences_with_terms']:,}; counterfactual twins "
            f"added: {cda['twins_added']:,}; sentences without one: {cda['neutral_sentences']}"
            + (
                f" ({cda['neutral_dropped']:,} dropped)"
                if cda["neutral_sentences"] == "drop"
                else ""
            ),
            "",
        ]
    if "dropout" in card:
        lines += ["## Dropout", *(f"- {k}: {v}" for k, v in card["dropout"].items()), ""]
    lines += [
        "## Corpus",
        f"- {c['path']} ({c['files']} file(s)), sha256 {c['sha256']}",
        f"- {c['sentences']:,} sentences; {c['training_texts']:,} training texts",
        "",
        "## Training",
        f"- steps: {t['steps']}, learning rate: {t['lr']}, batch size: {t['batch_size']}, "
        f"seed: {t['seed']}, max length: {t['max_length']}, warm-up: {t['warmup']}, "
        f"weight decay: {t['weight_decay']}",
        f"- masking: {t['masking']}",
        f"- optimizer: {t['optimizer']}",
        f"- final MLM loss (mean of the last {card['final_mlm_loss_steps']} steps): "
        f"{card['final_mlm_loss']:.4f}",
        "",
        f"Made {card['created']} with "
        + ", ".join(f"{k} {v}" for k, v in card["versions"].items())
        + ". Full details: `debias.json`.",
        "",
    ]
    return "\n".join(lines)


def evaluate_mlm(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    *,
    seed: int = 0,
    batch_size: int = 32,
    max_length: int = 128,
) -> dict[str, float]:
    """Held-out masked-LM accuracy and perplexity with the training masking (fixed seed).

    Returns:
        ``{"tokens": n, "accuracy": top-1 accuracy at the chosen positions, "loss": mean
        cross-entropy, "perplexity": exp(loss)}``.
    """
    import torch

    encoded = _encode(tokenizer, texts, max_length)
    special_ids = set(tokenizer.all_special_ids)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    vocab_size = int(model.get_input_embeddings().weight.shape[0])
    g = torch.Generator().manual_seed(step_seed(seed, 0, 3))
    model.eval()
    total = correct = 0
    nll = 0.0
    with torch.inference_mode():
        for i in range(0, len(encoded), batch_size):
            ids, attn, special = _collate(encoded[i : i + batch_size], pad_id, special_ids)
            inputs, labels = mask_tokens(
                ids, special, mask_id=tokenizer.mask_token_id, vocab_size=vocab_size, generator=g
            )
            logits = model(input_ids=inputs, attention_mask=attn).logits
            sel = labels != -100
            if not bool(sel.any()):
                continue
            lp = torch.log_softmax(logits[sel].double(), dim=-1)
            gold = labels[sel]
            nll += float(-lp.gather(1, gold[:, None]).sum())
            correct += int((lp.argmax(-1) == gold).sum())
            total += int(sel.sum())
    loss = nll / max(total, 1)
    return {
        "tokens": total,
        "accuracy": correct / max(total, 1),
        "loss": loss,
        "perplexity": math.exp(loss),
    }
