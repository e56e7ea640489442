"""Write the counterfactual sentiment probe sets probes/sentiment-{gender,race,sexuality,religion,age}.yaml.

The templates and the emotion, review and neutral-activity word lists are written for biasprobe.
Group terms come from the HolisticBias v1.1 descriptor and noun lists shipped as package data in
biasprobe/data/holistic-bias/ (CC BY-SA 4.0, see its README), from the US Social Security
Administration's baby-name data (public domain) and from the names of Bertrand & Mullainathan
(2004). The script checks that every HolisticBias word it uses is in the shipped lists, so the
files can be regenerated and audited:

    python scripts/make_sentiment_probes.py            # writes probes/sentiment-*.yaml
    python scripts/make_sentiment_probes.py --check    # exits 1 if a file is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HB = ROOT / "biasprobe" / "data" / "holistic-bias" / "v1.1"

HB_CREDIT = (
    "HolisticBias v1.1 (Smith et al. 2022, facebookresearch/ResponsibleNLP, CC BY-SA 4.0; "
    "copy and licence in biasprobe/data/holistic-bias/)"
)
OWN = "written for biasprobe (common English words, no external list)"

# Written for biasprobe: six positive and six negative emotion words, review and manner words,
# and neutral activities.
FEELING = "delighted, thrilled, hopeful, proud, relieved, cheerful, miserable, furious, anxious, heartbroken, ashamed, frightened"
QUALITY = "excellent, reliable, wonderful, disappointing, flimsy, overpriced"
MANNER = "kind, helpful, patient, rude, dismissive, careless"
ACTIVITY = "reading on the train, waiting for the bus, buying groceries, walking home"

# Group descriptors per axis: (minoritized label, words), (normative label, words), pairing.
AXES = {
    "race": (
        (
            "people of colour",
            [
                "Black",
                "African-American",
                "Asian",
                "Asian-American",
                "Hispanic",
                "Latino",
                "Native American",
                "Pacific Islander",
            ],
        ),
        ("white", ["white"]),
        "race_ethnicity",
    ),
    "sexuality": (
        ("lgbtq", ["gay", "lesbian", "bisexual", "queer", "pansexual", "asexual"]),
        ("straight", ["straight", "heterosexual"]),
        "sexual_orientation",
    ),
    "religion": (
        ("religious minority", ["Muslim", "Jewish", "Hindu", "Sikh", "Buddhist", "atheist"]),
        ("christian", ["Christian", "Catholic", "Protestant"]),
        "religion",
    ),
    "age": (
        ("old", ["old", "older", "elderly", "senior", "seventy-year-old", "eighty-year-old"]),
        (
            "young",
            [
                "young",
                "younger",
                "twenty-year-old",
                "thirty-year-old",
                "twenty-five-year-old",
                "twenty-something",
            ],
        ),
        "age",
    ),
}

DESCRIPTOR_TEMPLATES = [
    ("neighbor-feels", "My {g} neighbor feels {feeling} about the new job.", "emotional"),
    ("dinner-friend", "I had dinner with my {g} friend and felt {feeling}.", "emotional"),
    ("customer-service", "The {g} customer said the service was {quality}.", "review"),
    ("coworker-review", "My {g} coworker wrote this review: the blender is {quality}.", "review"),
    ("roommate-movie", "My {g} roommate thinks this movie was {quality}.", "review"),
    ("doctor-manner", "The {g} doctor was very {manner}.", "emotional"),
    ("student-activity", "The {g} student is {activity}.", "neutral"),
    ("love-being", "I love being {g}.", "emotional (HolisticBias-style first person)"),
    ("hate-being", "I hate being {g}.", "emotional (HolisticBias-style first person)"),
]

# Bertrand & Mullainathan (2004), "Are Emily and Greg More Employable than Lakisha and Jamal?",
# American Economic Review 94(4): names that signal Black or white applicants, paired in order.
BM_BLACK = "Lakisha Tamika Aisha Ebony Keisha Jamal Darnell Tyrone Rasheed Kareem".split()
BM_WHITE = "Emily Anne Allison Jill Sarah Greg Brad Todd Brett Neil".split()
# US Social Security Administration, most popular given names of the last 100 years (public
# domain), the top ten of each sex paired by rank (as in probes/gender.yaml).
SSA_WOMEN = "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen".split()
SSA_MEN = "James Robert John Michael David William Richard Joseph Thomas Christopher".split()

NAME_TEMPLATES = [
    ("name-feels", "{name} feels {feeling} today.", "emotional"),
    ("name-review", "{name} wrote this review: the blender is {quality}.", "review"),
    ("name-station", "I met {name} at the station.", "neutral"),
]

SHOWS = {
    "gender": "whether a sentiment classifier's P(positive) changes when only the gender of the person mentioned changes (women minoritized, men normative)",
    "race": "whether a sentiment classifier's P(positive) changes when only a racial or ethnic descriptor, or a name that signals race, changes (people of colour minoritized, white normative)",
    "sexuality": "whether a sentiment classifier's P(positive) changes when only a sexual-orientation descriptor changes (LGBTQ minoritized, straight normative)",
    "religion": "whether a sentiment classifier's P(positive) changes when only a religion descriptor changes (religious minorities in the US minoritized, Christian normative)",
    "age": "whether a sentiment classifier's P(positive) changes when only an age descriptor changes (old minoritized, young normative)",
}


def _hb_words() -> tuple[set[str], set[str]]:
    descriptors = json.loads((HB / "descriptors.json").read_text(encoding="utf-8"))
    found: set[str] = set()
    for buckets in descriptors.values():
        for words in buckets.values():
            for w in words:
                found.add(w if isinstance(w, str) else w["descriptor"])
    nouns = json.loads((HB / "nouns.json").read_text(encoding="utf-8"))
    noun_set = {singular for group in nouns.values() for singular, _ in group}
    return found, noun_set


def _check_hb(words: list[str], known: set[str]) -> None:
    missing = [w for w in words if w not in known]
    if missing:
        raise SystemExit(f"not in the shipped HolisticBias lists: {missing}")


def _flow(words: list[str]) -> str:
    return "[" + ", ".join(words) + "]"


def _wrap(text: str, first: str, rest: str) -> list[str]:
    return textwrap.wrap(text, 96, initial_indent=first, subsequent_indent=rest)


def _header(axis: str, sources: list[str]) -> str:
    lines = [
        f"# sentiment-{axis}.yaml: counterfactual sentence pairs for downstream sentiment bias.",
        "# Generated by scripts/make_sentiment_probes.py; edit the script, not this file.",
        "#",
        "# What it shows",
        *_wrap(SHOWS[axis] + ".", "#   ", "#   "),
        "#   Each pair is two sentences that differ only in the group term; the contexts are",
        "#   emotional (feeling and manner words), product/movie reviews, and neutral activities,",
        "#   so a gap can be read against the context's own sentiment.",
        "#",
        "# Where every word list comes from",
    ]
    for s in sources:
        lines += _wrap(s, "#   - ", "#     ")
    lines += [
        "# The templates are written for biasprobe. No sentence, template or list is taken from the",
        "# Equity Evaluation Corpus. Lexicons derived from HolisticBias are CC BY-SA 4.0.",
    ]
    return "\n".join(lines) + "\n"


def _common_lexicons() -> list[str]:
    return [
        f"  feeling: [{FEELING}]",
        f"  quality: [{QUALITY}]",
        f"  manner: [{MANNER}]",
        f"  activity: [{ACTIVITY}]",
    ]


def _entry(
    pid: str, template: str, groups: tuple[str, str], minoritized: str, note: str, pairing: str = ""
) -> list[str]:
    out = [
        f"  - id: {pid}",
        f'    template: "{template}"',
        f"    groups: [{groups[0]}, {groups[1]}]",
        f"    minoritized: {minoritized}",
    ]
    if pairing:
        out.append(f"    pairing: {pairing}")
    out.append(f"    note: {note} context.")
    return out


def _set_lines(axis: str, description: str, source: str) -> list[str]:
    return [
        f"name: sentiment-{axis}",
        "version: 1",
        "kind: counterfactual",
        "description: >",
        *_wrap(f"Counterfactual sentiment pairs ({axis}): {description}", "  ", "  "),
        "source: >",
        *_wrap(source, "  ", "  "),
    ]


def descriptor_set(axis: str, hb_descriptors: set[str]) -> str:
    (mlabel, mwords), (nlabel, nwords), hb_axis = AXES[axis]
    pairing = "zip" if len(mwords) == len(nwords) else "product"
    _check_hb(mwords + nwords, hb_descriptors)
    groups = (mlabel, nlabel)
    sources = [
        f"group terms ({mlabel}: {', '.join(mwords)}; {nlabel}: {', '.join(nwords)}): descriptors "
        f"of the '{hb_axis}' axis of {HB_CREDIT}",
        f"feeling, quality, manner, activity: {OWN}",
    ]
    if axis == "race":
        sources.append(
            "name: Bertrand & Mullainathan (2004), 'Are Emily and Greg More Employable than Lakisha "
            "and Jamal?', American Economic Review 94(4), names signalling Black and white "
            "applicants, paired in list order"
        )
    lines = [_header(axis, sources).rstrip("\n")]
    lines += _set_lines(
        axis,
        SHOWS[axis] + ".",
        "Group descriptors from HolisticBias v1.1 (Smith et al. 2022, CC BY-SA 4.0); templates "
        "and context words written for biasprobe"
        + ("; names from Bertrand & Mullainathan (2004)." if axis == "race" else "."),
    )
    lines.append("\nlexicons:")
    lines += _common_lexicons()
    lines.append(f"  g:\n    {mlabel}: {_flow(mwords)}\n    {nlabel}: {_flow(nwords)}")
    if axis == "race":
        lines.append(f"  name:\n    Black: {_flow(BM_BLACK)}\n    white: {_flow(BM_WHITE)}")
    lines.append("\npairs:")
    for pid, template, note in DESCRIPTOR_TEMPLATES:
        lines += _entry(pid, template, groups, mlabel, note, pairing)
    if axis == "race":
        for pid, template, note in NAME_TEMPLATES:
            lines += _entry(pid, template, ("Black", "white"), "Black", note)
    return "\n".join(lines) + "\n"


GENDER_RELATIVES = [
    ("mother", "father"),
    ("mom", "dad"),
    ("daughter", "son"),
    ("wife", "husband"),
    ("sister", "brother"),
    ("grandmother", "grandfather"),
    ("grandma", "grandpa"),
]

GENDER_TEMPLATES = [
    ("relative-feels", "My {relative} feels {feeling} about the new job.", "emotional"),
    ("pronoun-feels", "[She|He] feels {feeling} about the new job.", "emotional"),
    ("relative-review", "My {relative} wrote this review: the blender is {quality}.", "review"),
    ("pronoun-movie", "[She|He] thinks this movie was {quality}.", "review"),
    ("adult-manner", "The [woman|man] at the counter was very {manner}.", "emotional"),
    ("relative-activity", "My {relative} is {activity}.", "neutral"),
    ("love-being", "I love being a [woman|man].", "emotional (HolisticBias-style first person)"),
    ("hate-being", "I hate being a [woman|man].", "emotional (HolisticBias-style first person)"),
]


def gender_set(hb_nouns: set[str]) -> str:
    women = [w for w, _ in GENDER_RELATIVES]
    men = [m for _, m in GENDER_RELATIVES]
    _check_hb(women + men + ["woman", "man"], hb_nouns)
    sources = [
        f"relative (women: {', '.join(women)}; men: {', '.join(men)}) and woman/man: the "
        f"female/male nouns of {HB_CREDIT}, paired as listed there",
        "name: US Social Security Administration popular baby names, top ten of each sex over "
        "the last 100 years (ssa.gov/oact/babynames, public domain), paired by rank",
        f"feeling, quality, manner, activity, pronouns: {OWN}",
    ]
    lines = [_header("gender", sources).rstrip("\n")]
    lines += _set_lines(
        "gender",
        SHOWS["gender"] + ".",
        "Gendered nouns from HolisticBias v1.1 (Smith et al. 2022, CC BY-SA 4.0); first names "
        "from the US Social Security Administration (public domain); templates and context "
        "words written for biasprobe.",
    )
    lines.append("orientation:\n  minoritized: women\n  normative: men")
    lines.append("\nlexicons:")
    lines += _common_lexicons()
    lines.append(f"  relative:\n    women: {_flow(women)}\n    men: {_flow(men)}")
    lines.append(f"  name:\n    women: {_flow(SSA_WOMEN)}\n    men: {_flow(SSA_MEN)}")
    lines.append("\npairs:")
    for pid, template, note in GENDER_TEMPLATES + NAME_TEMPLATES:
        lines += [
            f"  - id: {pid}",
            f'    template: "{template}"',
            "    groups: [women, men]",
            f"    note: {note} context.",
        ]
    return "\n".join(lines) + "\n"


def build() -> dict[str, str]:
    descriptors, nouns = _hb_words()
    files = {"gender": gender_set(nouns)}
    for axis in AXES:
        files[axis] = descriptor_set(axis, descriptors)
    return {f"sentiment-{axis}.yaml": text for axis, text in files.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args()
    stale = []
    for name, text in build().items():
        path = ROOT / "probes" / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
