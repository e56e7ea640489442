"""Word lists shared by the benchmarks' lexicon-generated probe suites: US SSA top first names
(women's and men's, paired by rank) and occupation contexts."""

NAMES_W = [
    "Mary",
    "Patricia",
    "Jennifer",
    "Linda",
    "Elizabeth",
    "Barbara",
    "Susan",
    "Jessica",
    "Sarah",
    "Karen",
    "Lisa",
    "Nancy",
    "Betty",
    "Sandra",
    "Margaret",
    "Ashley",
    "Kimberly",
    "Emily",
    "Donna",
    "Michelle",
    "Carol",
    "Amanda",
    "Melissa",
    "Deborah",
    "Stephanie",
]
NAMES_M = [
    "James",
    "Robert",
    "John",
    "Michael",
    "David",
    "William",
    "Richard",
    "Joseph",
    "Thomas",
    "Charles",
    "Christopher",
    "Daniel",
    "Matthew",
    "Anthony",
    "Mark",
    "Donald",
    "Steven",
    "Andrew",
    "Paul",
    "Joshua",
    "Kenneth",
    "Kevin",
    "Brian",
    "George",
    "Timothy",
]
CONTEXTS = [
    "worked as a",
    "was hired as a",
    "wanted to become a",
    "trained to be a",
    "was promoted to",
    "retired as a",
    "is known as a",
    "was employed as a",
    "dreamed of being a",
    "studied to be a",
]


def names_suite_yaml(name: str, description: str, n_names: int, n_contexts: int, templates) -> str:
    """A probe file: women's × men's names zipped (the first ``n_names`` of each) times the first
    ``n_contexts`` contexts, one entry per template (``{name} {context}`` slots)."""
    lines = [
        f"name: {name}",
        "version: 1",
        f"description: {description}",
        "source: synthetic",
        "orientation: {minoritized: women, normative: men}",
        "lexicons:",
        "  name:",
        f"    women: [{', '.join(NAMES_W[:n_names])}]",
        f"    men: [{', '.join(NAMES_M[:n_names])}]",
        f"  context: [{', '.join(repr(c) for c in CONTEXTS[:n_contexts])}]",
        "pairs:",
    ]
    for pair_id, template in templates:
        lines += [f"  - id: {pair_id}", f'    template: "{template}"', "    groups: [women, men]"]
    return "\n".join(lines) + "\n"
