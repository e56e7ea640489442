"""``biasprobe debias`` data: CDA on tricky sentences, corpus reading, BERT masking."""

from __future__ import annotations

import hashlib

import pytest
import torch

from biasprobe.debias.data import (
    batch_indices,
    build_texts,
    mask_tokens,
    read_corpus,
    split_sentences,
)
from biasprobe.errors import UsageError
from biasprobe.sentiment.cda import load_swapper


@pytest.fixture(scope="module")
def swapper():
    return load_swapper("gender")


@pytest.mark.parametrize(
    "text, twin",
    [
        ("She gave her the book.", "He gave him the book."),  # her before a determiner → him
        ("Her old friend's husband called.", "His old friend's wife called."),  # her + adjective
        ("The book on the shelf is hers.", "The book on the shelf is his."),  # shelf untouched
        ("The prize is his.", "The prize is hers."),
        ("HE said Her name.", "SHE said His name."),  # case kept
        ("The king's men left.", "The queen's women left."),  # possessive 's stays
        ("He's the hero, isn't he?", "She's the heroine, isn't she?"),
        ("Mr. Smith met Mrs. Jones.", "Mrs. Smith met Mr. Jones."),
        ("John's sister, Mary, and her son", "Mary's brother, John, and his daughter"),
    ],
)
def test_cda_twins_of_tricky_sentences(swapper, text, twin):
    out = build_texts([text], "cda", swapper)
    assert out.texts == [text, twin]
    assert (out.with_terms, out.added) == (1, 1)


@pytest.mark.parametrize(
    "text",
    [
        "Mankind built a shelf in Manchester.",  # man/he inside words
        "The sheriff and the shepherd hesitated; Hermann read Johnson's thesis.",
        "Heroic themes of humanity, womanhood-free.",
        "Zoë wrote the chemistry report.",
    ],
)
def test_words_inside_words_and_unlisted_names_are_untouched(swapper, text):
    kept = build_texts([text], "cda", swapper, neutral="keep")
    dropped = build_texts([text, "he ran."], "cda", swapper, neutral="drop")
    assert kept.texts == [text] and kept.added == 0
    assert dropped.texts == ["he ran.", "she ran."] and dropped.dropped == 1


def test_neutral_sentences_kept_by_default_or_dropped(swapper):
    sents = ["A dull shelf.", "He sings.", "Rain fell."]
    assert build_texts(sents, "cda", swapper).texts == [
        "A dull shelf.",
        "He sings.",
        "She sings.",
        "Rain fell.",
    ]
    assert build_texts(sents, "cda", swapper, neutral="drop").texts == ["He sings.", "She sings."]
    assert build_texts(sents, "dropout").texts == sents  # other methods leave the text alone
    with pytest.raises(UsageError, match="no training text"):
        build_texts(["Rain fell."], "cda", swapper, neutral="drop")
    with pytest.raises(UsageError, match="--method 'cdx'"):
        build_texts(sents, "cdx", swapper)


def test_sentence_split():
    assert split_sentences('He left. She stayed!  Why? "Yes." e.g. no') == [
        "He left.",
        "She stayed!",
        "Why?",
        '"Yes." e.g. no',
    ]


def test_read_corpus_file_and_folder(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("He left. She stayed.\n\nRain.\n", encoding="utf-8")
    c = read_corpus(f)
    assert c.sentences == ["He left.", "She stayed.", "Rain."]
    assert c.sha256 == hashlib.sha256(f.read_bytes()).hexdigest()
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "b.txt").write_text("B one.\n", encoding="utf-8")
    (d / "a.txt").write_text("A one.\n", encoding="utf-8")
    (d / "skip.csv").write_text("not read\n", encoding="utf-8")
    c = read_corpus(d)
    assert c.sentences == ["A one.", "B one."] and c.files == 2
    entries = "".join(
        f"{rel}\t{hashlib.sha256((d / rel).read_bytes()).hexdigest()}\n"
        for rel in ("a.txt", "sub/b.txt")
    )
    assert c.sha256 == hashlib.sha256(entries.encode()).hexdigest()


def test_bad_corpus_is_refused_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nsecond \xff line\n")
    with pytest.raises(UsageError, match=r"bad.txt:2: not UTF-8"):
        read_corpus(bad)
    with pytest.raises(UsageError, match="does not exist"):
        read_corpus(tmp_path / "missing.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="holds no .txt files"):
        read_corpus(tmp_path / "empty")


def test_masking_is_15_percent_then_80_10_10():
    n, t, mask_id, vocab = 400, 250, 3, 1000
    ids = torch.randint(10, vocab, (n, t), generator=torch.Generator().manual_seed(1))
    special = torch.zeros((n, t), dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    g = torch.Generator().manual_seed(0)
    inputs, labels = mask_tokens(ids, special, mask_id=mask_id, vocab_size=vocab, generator=g)
    chosen = labels != -100
    assert not chosen[special].any()
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(inputs[~chosen], ids[~chosen])
    k = int(chosen.sum())
    assert abs(k / int((~special).sum()) - 0.15) < 0.005  # 99,200 tokens: sd 0.0011
    masked = int((inputs[chosen] == mask_id).sum())
    same = int((inputs[chosen] == ids[chosen]).sum())
    other = k - masked - same
    assert abs(masked / k - 0.8) < 0.01
    assert abs(same / k - 0.1) < 0.01  # (a random draw equal to the token: 1 in 1000, negligible)
    assert abs(other / k - 0.1) < 0.01
    again = mask_tokens(
        ids, special, mask_id=mask_id, vocab_size=vocab, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(again[0], inputs) and torch.equal(again[1], labels)


def test_batches_walk_through_shuffled_epochs():
    n, b = 10, 4
    seen = [i for step in range(5) for i in batch_indices(n, b, seed=7, step=step)]  # 2 epochs
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:20]) == list(range(10))
    assert seen[:10] != seen[10:20]
    assert batch_indices(n, b, seed=7, step=3) == seen[12:16]
    assert batch_indices(n, b, seed=8, step=0) != seen[:4]


# --- race and religion: three groups, one counterfactual per other group -------------------


@pytest.fixture(scope="module")
def race():
    return load_swapper("race")


@pytest.fixture(scope="module")
def religion():
    return load_swapper("religion")


@pytest.mark.parametrize(
    "text, twins",
    [
        ("Black and white actors.", ["White and asian actors.", "Asian and black actors."]),
        ("BLACKS", ["WHITES", "ASIANS"]),  # case kept, plural
        # a listed compound is swapped whole, its case kept part by part
        ("Asian-American writers", ["African-American writers", "European-American writers"]),
        (
            "The Africans' music from Africa",
            [
                "The Caucasians' music from Europe",
                "The Asians' music from Asia",
            ],
        ),
        # an unlisted compound: word by word
        (
            "Asian-born and white-haired",
            ["Black-born and asian-haired", "White-born and black-haired"],
        ),
        # no pronoun rules outside gender: "her" stays
        (
            "An Asian chef and a European",  # the article follows the new word
            ["A Black chef and an Asian", "A White chef and an African"],
        ),
        ("her Black friend", ["her White friend", "her Asian friend"]),
    ],
)
def test_race_counterfactuals_of_tricky_sentences(race, text, twins):
    assert race.counterfactuals(text) == twins
    out = build_texts([text], "cda", race)
    assert out.texts == [text, *twins] and (out.with_terms, out.added) == (1, 2)


@pytest.mark.parametrize(
    "text, twins",
    [
        (
            "Christianity is older than Islam; the Christian church",
            [
                "Islam is older than Judaism; the Muslim mosque",
                "Judaism is older than Christianity; the Jewish synagogue",
            ],
        ),
        ("Muslims and Jews", ["Jews and Christians", "Christians and Muslims"]),
        ("The Koran and the Torah", ["The Torah and the Bible", "The Bible and the Quran"]),
        ("ISLAMIC art", ["JEWISH art", "CHRISTIAN art"]),
        ("a rabbi's synagogues", ["a priest's churches", "an imam's mosques"]),  # a → an
    ],
)
def test_religion_counterfactuals_of_tricky_sentences(religion, text, twins):
    assert religion.counterfactuals(text) == twins


@pytest.mark.parametrize(
    "axis, text",
    [
        ("race", "Blackwell walked past Whitehall to the Asiatic collection in Caucasia."),
        ("race", "Whitening, blackened, blackboards"),
        ("religion", "Christiansen's priestly tone and the Jewishness of Churchill"),
        ("religion", "Islamabad and Mosquera"),
    ],
)
def test_race_and_religion_words_inside_words_are_untouched(axis, text):
    s = load_swapper(axis)
    assert s.counterfactuals(text) == [] and not s.contains_term(text)
    kept = build_texts([text], "cda", s)
    assert kept.texts == [text] and kept.added == 0


@pytest.mark.parametrize("axis", ["race", "religion"])
def test_each_group_appears_once_among_a_sentence_and_its_twins(axis):
    """One counterfactual per other group: the sentence and its k - 1 twins hold every group's
    word of a line exactly once (the balance that two-sided CDA has for two groups)."""
    s = load_swapper(axis)
    assert s.k == 3
    for word, (row, _group) in s.index.items():
        words = [
            t.split()[1] for t in [f"the {word} people", *s.counterfactuals(f"the {word} people")]
        ]
        assert sorted(words) == sorted(s.rows[row]), word


def test_gender_keeps_one_twin_and_its_pronoun_rules(swapper):
    assert swapper.k == 2
    assert swapper.counterfactuals("She gave her the book.") == ["He gave him the book."]
    assert swapper.counterfactuals("nothing here") == []
    assert swapper.pairs["king"] == "queen" and swapper.pairs["queen"] == "king"


def test_shipped_race_and_religion_lists_say_where_their_words_come_from():
    from biasprobe.sentiment.cda import cda_dir

    for axis in ("race", "religion"):
        head = (cda_dir() / f"{axis}.tsv").read_text().split("\na\tb\tc\n")[0]
        assert "bias-bench" in head and "MIT" in head and "Liang et al. (2020" in head
        assert "Licence" in head


def test_a_list_of_three_groups_is_checked(tmp_path):
    f = tmp_path / "x.tsv"
    f.write_text("# three groups\na\tb\tc\nred\tgreen\tblue\nreds\tgreens\n")
    with pytest.raises(UsageError, match=r"x.tsv:4: expected three words separated by tabs"):
        load_swapper("colour", f)
    f.write_text("red\tgreen\tblue\ngreen\tteal\tnavy\n")
    with pytest.raises(UsageError, match=r"x.tsv:2: the word 'green' is listed twice"):
        load_swapper("colour", f)
    f.write_text("red\tred\tblue\n")
    with pytest.raises(UsageError, match=r"x.tsv:1: a word is listed twice on the line"):
        load_swapper("colour", f)
    f.write_text("red\tgreen\tblue\nscarlet\tgreen\tnavy\n")  # same column: a replacement only
    s = load_swapper("colour", f)
    assert s.counterfactuals("green") == ["blue", "red"]  # read from its first line
    assert s.counterfactuals("scarlet") == ["green", "navy"]
    assert s.counterfactuals("her red hat") == ["her green hat", "her blue hat"]
