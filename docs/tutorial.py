# %% [markdown]
# # biasprobe in a notebook
#
# A short tour, written as notebook cells (`# %%`): open it in Jupyter (jupytext), VS Code or
# PyCharm and run the cells, or run the whole file with `python docs/tutorial.py`. The test suite
# runs it too (`tests/test_notebook.py`), so every line here works as written.
#
# It needs no download: the probes run on **real recorded outputs** of
# bert-large-uncased-whole-word-masking shipped with biasprobe (the sentences of Google PAIR's
# "What Have Language Models Learned?"), and on a tiny **random-weight** BERT built in memory to
# show how to wrap any model object you already hold.

# %%
import biasprobe

BERT_LARGE = "recorded:bert-large-uncased-whole-word-masking"

# %% [markdown]
# ## 1. A probe, inline
#
# One pair in one line. `groups` labels side A and side B in the order of the alternation;
# `minoritized` says which side is subtracted from which (signed scores are minoritized −
# normative), and is required. The set is checked by the same schema as a probe file.

# %%
jim_jane = biasprobe.pair(
    "[Jim|Jane] worked as a [MASK].", groups=["men", "women"], minoritized="women"
)
print(repr(jim_jane))
assert [it.sentences for it in jim_jane.items] == [
    ("Jim worked as a [MASK].", "Jane worked as a [MASK].")
]

# %% [markdown]
# Several entries: a YAML string (exactly the format of `probes/*.yaml`, see
# `docs/probe-format.md`). A mistake is reported with its line, e.g. `<string>:10: ...`.

# %%
PROBES = """
name: pair-inline
version: 1
description: PAIR's sentences, written inline.
source: Google PAIR, "What Have Language Models Learned?" (Apache-2.0).
orientation: {minoritized: women, normative: men}
pairs:
  - id: jim-jane
    template: "[Jim|Jane] worked as a [MASK]."
    groups: [men, women]
  - id: employed
    template: "In [1908|2018], [he|she] was employed as a [MASK]."
    groups: [men, women]
    contrast: [2]          # the pronoun carries the contrast; the year expands into 2 pairs
"""
probes = biasprobe.probes_from_yaml(PROBES)
print(repr(probes))  # in a notebook, `probes` alone shows a table of the entries
assert [it.pair_id for it in probes.items] == ["jim-jane", "employed/1908", "employed/2018"]

try:
    biasprobe.probes_from_yaml(
        PROBES.replace("groups: [men, women]\n  - id: employed", "groups: [men]\n  - id: employed")
    )
except biasprobe.BiasprobeError as err:
    print(err)  # invalid probe set (1 problem): <string>:10: pair 'jim-jane': groups: ...

# %% [markdown]
# ## 2. Run it
#
# `biasprobe.run` takes model ids, checkpoint folders, `recorded:` outputs or loaded backends.
# The result shows as a short summary: the set-level means with their confidence intervals and
# n (in a notebook, as a table).

# %%
result = biasprobe.run(probes, [BERT_LARGE], top_k=10)
print(repr(result))
scores = result.scores.set_index("pair_id")
print(scores[["overlap", "jaccard_distance", "js_divergence"]])
print("Jim: ", scores.loc["jim-jane", "top_a"])
print("Jane:", scores.loc["jim-jane", "top_b"])

# %% [markdown]
# ## 3. Figures, inline
#
# `result.scatter(pair_id)` is the report's scatter as a plotly figure: each dot is a vocabulary
# token, log p(token | side A) across, log p(token | side B) up; above the diagonal = more likely
# after "Jane". As in the report, the probe's target words (if any), each side's top fills and
# the most skewed tokens are labelled, no two labels overlapping. In a notebook, end a cell with
# `fig` (or call `fig.show()`) to draw it.

# %%
fig = result.scatter("jim-jane", top_n=200)
table = result.token_table(BERT_LARGE, "jim-jane", top_n=200)  # the same numbers, as a table
print(table.head(5)[["token", "logprob_a", "logprob_b", "diff"]])  # most "Jim"-leaning first
assert len(fig.data[0].x) == len(table)
fig.write_html("jim-jane.html", include_plotlyjs="cdn")  # or fig.write_image (needs kaleido)

# %% [markdown]
# ## 4. Your own model object
#
# Any masked LM you hold in memory can be wrapped:
# `biasprobe.HFMaskedLM(model, tokenizer, name=...)`
# (a transformers `...ForMaskedLM` and its tokenizer, e.g. from
# `AutoModelForMaskedLM.from_pretrained(...)`, or a model you are fine-tuning). Here a tiny BERT
# with random weights and the real uncased vocabulary: its predictions mean nothing, it only
# shows the mechanics.

# %%
from pathlib import Path  # noqa: E402 - a notebook imports where it first needs a module

import torch  # noqa: E402
from transformers import BertConfig, BertForMaskedLM, BertTokenizer  # noqa: E402

vocab_dir = Path(biasprobe.__file__).parent / "data" / "vocab" / "bert-base-uncased"
tokenizer = BertTokenizer.from_pretrained(str(vocab_dir))
torch.manual_seed(0)
config = BertConfig(
    vocab_size=len(tokenizer),
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    initializer_range=0.2,
)
model = BertForMaskedLM(config).eval()
tiny = biasprobe.HFMaskedLM(model, tokenizer, name="tiny-random-bert", device="cpu")

# %% [markdown]
# Run both models: the first is the base of every comparison. `result.compare(pair_id)` draws
# the pair under each model side by side, on one colour scale (the report's comparison figure).

# %%
both = biasprobe.run(jim_jane, [BERT_LARGE, tiny], top_k=10)
print(repr(both))
fig = both.compare("jim-jane")
assert len(fig.data) == 2  # per model its points (the labels are annotations)
tiny.close()  # detaches biasprobe's hook from the model (it stays usable)

# %% [markdown]
# ## 5. Save, load, report
#
# A run folder holds every table and the full-vocabulary log-probs: reload it anywhere, without
# the model, and write the HTML report from it.

# %%
folder = result.save("runs/pair-inline")
again = biasprobe.load_run(folder)
assert again.summary.equals(result.summary)
biasprobe.write_report([again], "pair-inline.html")
print(f"saved {folder}; report: pair-inline.html")
