""".venv/bin/python examples/vault/make_vault_logs.py [--reuse-answers examples/vault/logs.jsonl] [--limit N]

Writes the sixth evaluation-only set: `examples/vault/logs.jsonl` (110 user logs, 22 per topic) and
`examples/vault/test.jsonl` (8 test queries per topic, none of them a logged question). It is kept
sealed for one final evaluation: never tune anything on it. The topics and their checks
(`examples/vault/checks.py`) were committed before this script generated anything.

How the procedure differs from the five earlier generators (`examples/make_example_logs.py`,
`examples/heldout/`, `examples/unseen/`, `examples/sealed/`, `examples/reserve/`):

- Wants and subjects are new: a bold opening phrase (running, podcasting); a `> ` quote line
  (genealogy, 3D printing); a `Warning:` line (scuba diving, foraging); a last line `Sources:`
  (copyright, recycling); inconsistent (fashion, cryptocurrency). The test set adds a third,
  unlogged subject per topic (calligraphy, origami, rock climbing, solar power, perfume).
- Questions are one user turn in five styles: plain, two questions in one turn ("What is a tempo
  run? And how often ...?"), learner English ("How I can ...?"), a statement with no question mark
  ("I'm wondering whether ...", "Not sure how ..."), or a question followed by what the user already
  tried ("... ? I've tried a glue stick and it still lifts.").
- Decoding: on-policy answers of the embedded SmolLM2-135M-Instruct (`uno_graph.models.load_model`,
  the question through the chat template), sampled with temperature 0.6, top_p 0.85, top_k 25,
  repetition_penalty 1.15 and max_new_tokens 150, **one prompt at a time** (no batching, no
  padding), each prompt with its own seed taken from a hash of the question
  (`torch.manual_seed(sha256("vault:<question>")[:8])`), on one thread. An answer that hit the
  token limit loses its unfinished last line (or, when it is one paragraph, its unfinished last
  sentence); an answer that ended on its own is logged as generated.
- Logs arrive along the users' timelines: each user's logs are spread over the whole file (a log's
  place is its rank in the user's history plus a seeded jitter), ids `vault-001` ... Users have
  handle-like ids (`amber-heron-42`). Per want topic five recurring want users with one habit each:
  `silent` (rewrites the answer and says nothing), `coach` (says what they want in their own words
  and usually rewrites a trimmed answer), `patcher` (keeps the answer and adds the missing part),
  `grumbler` (a vague complaint first, later the want typed into the feedback box, once in a while
  a rewrite) and `cheerful` (thumbs-up on answers that miss the want, sometimes with the want as a
  wish in the feedback box, rarely a rewrite); one recurring `contrarian` who asks for the
  opposite; two one-off drive-by users. Each want user phrases the want in their own words (two
  phrasings each, none shared with another user). About a quarter of the want-aimed edits miss the
  check in ways the earlier sets did not use. `inconsistent` is written by six users with a taste
  each (analogies / literal, warm / blunt, figures / no figures), three of whom flip to the
  opposite taste halfway through their history.

Deterministic: one seed per prompt and one thread; two runs give identical files.
`--reuse-answers OLD_LOGS` takes the logged answers from an earlier logs.jsonl (matched by topic and
question) and skips the model. `--limit N` samples the first N questions only, prints them and
writes nothing (a dry run of the decoding; each answer is the one the full run logs, since every
prompt has its own seed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from checks import check  # noqa: E402  (examples/vault/checks.py)

SEED = "vault-v1"
MAX_NEW_TOKENS = 150
TEMPERATURE = 0.6
TOP_P = 0.85
TOP_K = 25
REPETITION_PENALTY = 1.15
N_TRAIN = 22
N_TEST = 8

TOPICS = ["bold-lead", "quote-line", "warning-line", "sources-line", "inconsistent"]
WANT_TOPICS = TOPICS[:4]
STYLES = ["plain", "two-part", "learner", "statement", "tried"]


class Ask(NamedTuple):
    """A question, its style, and what a user who edits the answer adds for it: the bold opening
    phrase, the line to quote, the warning, or the sources."""

    style: str
    question: str
    extra: str | None = None


P, T2, L, S, TR = STYLES  # short names for the tables below

# ---------------------------------------------------------------------------------------------
# Questions: per topic two subjects of 11 logged questions each.
# ---------------------------------------------------------------------------------------------

TRAIN: dict[str, dict[str, list[Ask]]] = {
    "bold-lead": {
        "running": [
            Ask(P, "How do I choose running shoes if I overpronate?", "Get a stability shoe fitted at a running shop."),
            Ask(P, "What should I eat before a morning run?", "A small carb snack 30-60 minutes before is enough."),
            Ask(P, "How do I train for my first half marathon?", "Give yourself 12 weeks and build the long run slowly."),
            Ask(T2, "What is a tempo run? And how often should a beginner do one?", "A comfortably hard run, once a week at most."),
            Ask(T2, "Why do my shins hurt after running? Should I stop?", "Probably shin splints: cut back, don't stop completely."),
            Ask(L, "How much kilometers I should run in the first week when I am total beginner?", "About 5-8 km in total, split over three runs."),
            Ask(L, "Is it bad for my knees running every day, I am 45 years?", "Not if you build up slowly and rest when sore."),
            Ask(S, "I'm wondering if I should run with music or without.", "Music is fine, but keep one ear free outdoors."),
            Ask(S, "Not sure whether to stretch before or after a run.", "Warm up with movement before, stretch after."),
            Ask(TR, "How do I stop getting a side stitch? I've tried breathing slower and it still comes back.", "Slow down, breathe out hard and eat earlier."),
            Ask(TR, "How can I run a faster 5k? I already run three times a week at the same pace.", "Make one of your three runs an interval session."),
        ],
        "podcasting": [
            Ask(P, "What microphone should I buy to start a podcast?", "A dynamic USB microphone is all you need to start."),
            Ask(P, "How do I get my first 100 podcast listeners?", "Tell your own circle first, then guest on other shows."),
            Ask(P, "How long should a podcast episode be?", "As long as the content holds up, often 20-40 minutes."),
            Ask(T2, "Do I need to edit out every 'um'? And how long does editing usually take?", "No, cut only the ums that distract."),
            Ask(T2, "Where do I host a podcast? Is there a free option?", "Use a podcast host; free plans exist but have limits."),
            Ask(L, "How I make my voice sound more good on a podcast recording?", "Speak close to the mic in a room full of soft things."),
            Ask(L, "For a beginner person, is better to record podcast alone or with a co-host?", "A co-host makes it easier to keep talking."),
            Ask(S, "I'm wondering whether video podcasts are worth the extra work.", "Only if you want to grow on YouTube."),
            Ask(S, "Not sure how often I should release new episodes.", "Pick a schedule you can keep, weekly or every two weeks."),
            Ask(TR, "How do I remove the echo in my recordings? I've tried a noise filter in Audacity but it sounds robotic.", "Fix the room first, then move the mic closer."),
            Ask(TR, "How do I interview guests without awkward silences? I already send them the questions in advance.", "Listen, then ask about their last answer."),
        ],
    },
    "quote-line": {
        "genealogy": [
            Ask(P, "How do I start tracing my family tree?", "Write down what you know, then ask the oldest relatives first."),
            Ask(P, "How reliable are DNA ancestry tests?", "Relative matches are solid; ethnicity percentages are estimates."),
            Ask(P, "How do I find my great-grandfather's immigration record?", "Search passenger lists by surname, five years either side of the arrival year."),
            Ask(T2, "What is a census record? And what can it tell me about my ancestors?", "A census lists everyone in the household on one night, with ages and jobs."),
            Ask(T2, "Should I use Ancestry or FamilySearch? Is the free one good enough?", "FamilySearch is free and good enough to start."),
            Ask(L, "How I can find the birth certificate of my grandmother that was born in other country?", "Write to the civil registry of the town where she was born."),
            Ask(L, "What mean 'b. abt 1850' in an old family tree?", "b. abt 1850 = born about 1850, exact year unknown."),
            Ask(S, "I'm wondering how to organise all the papers and photos I inherited.", "One folder per couple, labelled Surname, First name (birth-death)."),
            Ask(S, "Not sure how to ask my elderly aunt about family history without upsetting her.", "Tell me about the house you grew up in."),
            Ask(TR, "How do I find an ancestor whose name is spelled differently in every record? I've tried the exact spelling and get nothing.", "Sm*th finds Smith, Smyth and Smithe."),
            Ask(TR, "How do I date an old family photo? I already checked the back and there's no writing.", "Clothes, hairstyles and the card mount usually date a photo within a decade."),
        ],
        "3d-printing": [
            Ask(P, "Why is my first layer not sticking to the bed?", "Level the bed, wipe it with alcohol, lower the nozzle a little."),
            Ask(P, "What filament should a beginner use?", "PLA: prints at 190-220 °C and forgives mistakes."),
            Ask(P, "How do I stop stringing between the parts of my print?", "More retraction, 5 °C lower nozzle temperature."),
            Ask(T2, "What infill percentage should I use? Does more infill make parts stronger?", "15-20 % infill; add walls, not infill, for strength."),
            Ask(T2, "Do I need to dry my filament? How can I tell if it's wet?", "Popping or hissing at the nozzle means wet filament."),
            Ask(L, "Why my print is having lines on the sides like waves?", "Tighten the belts and slow down the outer walls."),
            Ask(L, "Which slicer program is good for a beginner, Cura or PrusaSlicer?", "Use the slicer that has a profile for your printer."),
            Ask(S, "I'm wondering whether a resin printer would be better for miniatures.", "Resin for detail; gloves and fresh air for the resin."),
            Ask(S, "Not sure what layer height to pick for a quick test print.", "0.28 mm for a quick draft, 0.12 mm for detail."),
            Ask(TR, "How do I fix warping on the corners of my prints? I've tried a glue stick and it still lifts.", "Add a brim and keep drafts away from the printer."),
            Ask(TR, "How do I stop my nozzle from clogging? I already do a cold pull every few weeks.", "Keep the filament dry and never leave a hot nozzle idle."),
        ],
    },
    "warning-line": {
        "scuba-diving": [
            Ask(P, "How do I equalize my ears when scuba diving?", "never force it; go up a little and try again."),
            Ask(P, "What do I need to know before my first open water dive?", "never hold your breath while you ascend."),
            Ask(P, "How long should I wait to fly after scuba diving?", "wait at least 18 hours after several dives before you fly."),
            Ask(T2, "What is nitrogen narcosis? And how deep does it start?", "narcosis can start around 30 m; ascend if you feel drunk or confused."),
            Ask(T2, "How do I choose a dive computer? Is a cheap one safe enough?", "learn your computer's limits and never dive past them."),
            Ask(L, "How I can use less air when I am diving, my tank finishes very fast?", "never skip the safety stop to save air."),
            Ask(L, "Is possible to dive with a cold or a blocked nose?", "diving congested can burst an eardrum; skip the dive."),
            Ask(S, "I'm wondering what to do if I lose my buddy underwater.", "search for one minute at most, then surface."),
            Ask(S, "Not sure which wetsuit thickness I need for water around 20 degrees.", "cold drains your strength fast; end the dive if you start shivering."),
            Ask(TR, "How do I stop my mask from fogging? I've tried spitting in it and it still fogs.", "never use household cleaners in a mask; they sting the eyes."),
            Ask(TR, "How do I control my buoyancy better? I already added more weight and it got worse.", "too much weight makes you sink fast; take it off step by step with an instructor."),
        ],
        "foraging": [
            Ask(P, "How do I tell a chanterelle from a false chanterelle?", "never eat a wild mushroom until an expert has confirmed it."),
            Ask(P, "What wild plants are safe to eat in spring?", "wild garlic looks like lily of the valley, which is poisonous."),
            Ask(P, "Is it legal to forage in public parks?", "picking in nature reserves can mean a fine; check the local rules first."),
            Ask(T2, "What are elderberries good for? Can I eat them raw?", "raw elderberries can make you sick; cook them first."),
            Ask(T2, "How do I pick nettles without getting stung? And what can I make with them?", "fresh nettles sting through thin gloves; wear thick ones."),
            Ask(L, "Which berries in the forest I can eat without danger?", "many red and white berries are poisonous; eat only ones you know for certain."),
            Ask(L, "How I should clean wild mushrooms before cooking them?", "cook wild mushrooms well; many are toxic raw."),
            Ask(S, "I'm wondering whether foraging near roads is a good idea.", "plants next to busy roads can carry lead and exhaust residue."),
            Ask(S, "Not sure how to start foraging with my kids.", "teach the kids never to eat anything they pick without asking you."),
            Ask(TR, "How do I find morels? I've tried looking under oak trees for weeks and found nothing.", "false morels are poisonous; true morels are hollow when cut in half."),
            Ask(TR, "How do I identify wild garlic for sure? I already compared photos online.", "lily of the valley and autumn crocus look similar and are deadly."),
        ],
    },
    "sources-line": {
        "copyright": [
            Ask(P, "Can I use a song in my YouTube video if I credit the artist?", "YouTube Help, Copyright and fair use; U.S. Copyright Office, fair use index"),
            Ask(P, "How long does copyright last?", "U.S. Copyright Office, Circular 15a; Berne Convention, Article 7"),
            Ask(P, "Do I need to register my work to own the copyright?", "U.S. Copyright Office, Circular 1; Berne Convention, Article 5"),
            Ask(T2, "What is fair use? Does it work the same in every country?", "17 U.S.C. § 107; UK Intellectual Property Office, exceptions to copyright"),
            Ask(T2, "Can I copyright a recipe? What about the photos of it?", "U.S. Copyright Office, Circular 33; 17 U.S.C. § 102"),
            Ask(L, "If I translate a book by myself, I can sell the translation?", "Berne Convention, Article 8; U.S. Copyright Office, Circular 14"),
            Ask(L, "What mean the Creative Commons license CC BY-NC?", "creativecommons.org, About CC Licenses"),
            Ask(S, "I'm wondering whether photos I find on Google are free to use.", "U.S. Copyright Office, FAQ; Google Images Help, usage rights"),
            Ask(S, "Not sure who owns the copyright when a freelancer designs my logo.", "U.S. Copyright Office, Circular 30, Works Made for Hire"),
            Ask(TR, "How do I get a copied blog post taken down? I've tried emailing the site owner and got no reply.", "17 U.S.C. § 512 (DMCA notices); Google, legal removal requests"),
            Ask(TR, "How do I know if a book is in the public domain? I already checked the publication year.", "U.S. Copyright Office, Circular 22; Cornell University, copyright term and the public domain"),
        ],
        "recycling": [
            Ask(P, "Can pizza boxes go in the recycling?", "EPA, How Do I Recycle Common Recyclables; your local council's recycling guide"),
            Ask(P, "What do the numbers on plastic containers mean?", "ASTM D7611, resin identification codes; EPA, Plastics: Material-Specific Data"),
            Ask(P, "How do I recycle old batteries?", "EPA, Used Household Batteries; Call2Recycle drop-off locator"),
            Ask(T2, "Is glass recycling actually worth it? What happens to the glass?", "Glass Packaging Institute; EPA, Glass: Material-Specific Data"),
            Ask(T2, "Do I need to rinse containers before recycling? How clean is clean enough?", "EPA, Recycling Basics; WRAP, Recycle Now"),
            Ask(L, "Where I can put old clothes that are too broken for giving to charity?", "WRAP, textiles guidance; your council's textile bank list"),
            Ask(L, "Why my city don't accept plastic bags in the recycling bin?", "EPA, Recycling Basics; How2Recycle, store drop-off"),
            Ask(S, "I'm wondering whether compostable cups can go in the recycling bin.", "BPI, compostable certification; your local council's waste rules"),
            Ask(S, "Not sure what to do with an old laptop I don't use anymore.", "EPA, Electronics Donation and Recycling; e-Stewards recycler finder"),
            Ask(TR, "How do I get my family to sort the recycling properly? I've tried labels on the bins and nobody reads them.", "WRAP, Recycle Now tips at home; Keep America Beautiful"),
            Ask(TR, "How do I get rid of a broken mirror? I already know it can't go in with glass bottles.", "your local council's waste A-Z; EPA, Reducing and Reusing Basics"),
        ],
    },
    "inconsistent": {
        "fashion": [
            Ask(P, "What colours go well with navy trousers?"),
            Ask(P, "How should a blazer fit?"),
            Ask(P, "What is a capsule wardrobe?"),
            Ask(T2, "Are skinny jeans out of style? What's replacing them?"),
            Ask(T2, "How do I wash wool sweaters? Can they go in the machine?"),
            Ask(L, "Which shoes is good with a long dress for a summer wedding?"),
            Ask(L, "How I can dress more elegant with a small budget?"),
            Ask(S, "I'm wondering whether fast fashion is really that bad."),
            Ask(S, "Not sure how to find my own style at 40."),
            Ask(TR, "How do I stop my white shirts from going yellow? I've tried bleach and it made it worse."),
            Ask(TR, "How do I find jeans that fit? I already tried five brands and they all gape at the waist."),
        ],
        "cryptocurrency": [
            Ask(P, "What is a blockchain?"),
            Ask(P, "How does Bitcoin mining work?"),
            Ask(P, "What is a stablecoin?"),
            Ask(T2, "What is a crypto wallet? Is a hardware wallet worth it?"),
            Ask(T2, "Why is crypto so volatile? Will it ever calm down?"),
            Ask(L, "How I can buy bitcoin safely the first time?"),
            Ask(L, "What is the difference of Bitcoin and Ethereum?"),
            Ask(S, "I'm wondering whether crypto gains are taxed."),
            Ask(S, "Not sure what an NFT actually is."),
            Ask(TR, "How do I spot a crypto scam? I've tried reading reviews but they all look fake."),
            Ask(TR, "How do I get back into a wallet I lost the password to? I already tried every password I use."),
        ],
    },
}

# Test queries: (subject, style, question). Five on the logged subjects, three on a subject no log mentions.
TEST: dict[str, list[tuple[str, str, str]]] = {
    "bold-lead": [
        ("running", P, "What's a good warm-up before a run?"),
        ("running", T2, "How should I breathe when running? Through the nose or the mouth?"),
        ("running", S, "I'm wondering how to keep running through the winter."),
        ("podcasting", L, "How I can find guests for my small podcast?"),
        ("podcasting", TR, "How do I grow my podcast? I've tried posting on Instagram and nothing changes."),
        ("calligraphy", P, "Which pen should I start calligraphy with?"),
        ("calligraphy", TR, "How do I keep my letters the same size? I've tried drawing guide lines and they still vary."),
        ("calligraphy", S, "Not sure whether to learn italic or copperplate first."),
    ],
    "quote-line": [
        ("genealogy", P, "How do I find out where my ancestors are buried?"),
        ("genealogy", T2, "What is a family group sheet? And how do I fill one in?"),
        ("3d-printing", L, "How I can make supports easier to remove from my print?"),
        ("3d-printing", S, "I'm wondering whether I need an enclosure for printing PETG."),
        ("3d-printing", TR, "How do I stop the nozzle hitting my print? I've tried re-levelling the bed twice."),
        ("origami", P, "What paper is best for origami?"),
        ("origami", T2, "How do I make a clean valley fold? And what is a mountain fold?"),
        ("origami", L, "How I can fold a crane when the instructions confuse me?"),
    ],
    "warning-line": [
        ("scuba-diving", P, "What should I check before every dive?"),
        ("scuba-diving", S, "I'm wondering whether I can dive with contact lenses."),
        ("foraging", T2, "How do I pick sloes for sloe gin? When are they ready?"),
        ("foraging", L, "Which mushrooms is good for a beginner forager to learn first?"),
        ("foraging", TR, "How do I store foraged berries? I've tried the fridge and they go mouldy in a day."),
        ("rock-climbing", P, "How do I fall safely when bouldering?"),
        ("rock-climbing", T2, "What is a belay device? And how do I choose one?"),
        ("rock-climbing", S, "Not sure if I'm ready to climb outdoors after a year in the gym."),
    ],
    "sources-line": [
        ("copyright", P, "Can I use a movie clip in a review video?"),
        ("copyright", S, "I'm wondering whether fan art breaks copyright."),
        ("copyright", L, "How I can protect my photos from being copied on Instagram?"),
        ("recycling", T2, "What can I do with old paint tins? Can they be recycled?"),
        ("recycling", TR, "How do I recycle coffee capsules? I've tried the normal bin and the council said no."),
        ("solar-power", P, "How many solar panels does an average house need?"),
        ("solar-power", T2, "Are solar panels worth it in a cloudy country? How long do they take to pay back?"),
        ("solar-power", S, "Not sure whether I need a battery with my solar panels."),
    ],
    "inconsistent": [
        ("fashion", P, "How do I choose a colour palette for my wardrobe?"),
        ("fashion", T2, "What should I wear to a job interview? Is a suit too much?"),
        ("cryptocurrency", S, "I'm wondering how crypto exchanges make money."),
        ("cryptocurrency", L, "What means proof of stake?"),
        ("cryptocurrency", TR, "How do I move coins off an exchange? I've tried once and the fee was huge."),
        ("perfume", P, "What's the difference between eau de parfum and eau de toilette?"),
        ("perfume", L, "How I can make perfume last longer on my skin?"),
        ("perfume", S, "Not sure how to pick a signature scent."),
    ],
}


# ---------------------------------------------------------------------------------------------
# Users.
# ---------------------------------------------------------------------------------------------

HABITS = ["silent", "coach", "patcher", "grumbler", "cheerful"]
HABIT_SHARE = {"silent": 4, "coach": 4, "patcher": 4, "grumbler": 3, "cheerful": 3}  # 18 of 22 logs
CONTRA_SHARE = 2  # one recurring contrarian per want topic
N_DRIVE_BY = 2  # one-off users per want topic
TASTES = ["analogy", "literal", "warm", "blunt", "figures", "no-figures"]
OPPOSITE = {"analogy": "literal", "literal": "analogy", "warm": "blunt", "blunt": "warm",
            "figures": "no-figures", "no-figures": "figures"}
TASTE_SHARE = [4, 4, 4, 4, 3, 3]
DRIFTERS = {"analogy", "blunt", "figures"}  # flip to the opposite taste halfway through their history

_ADJ = ["amber", "brisk", "cedar", "dusky", "ember", "fern", "gilded", "hazel", "indigo", "jade", "keen", "lunar",
        "mossy", "noble", "olive", "pebble", "quiet", "russet", "sable", "tawny", "umber", "velvet", "willow",
        "zesty", "coral", "frosty", "golden", "misty", "rusty", "sunny", "stormy", "plum"]
_ANIMAL = ["heron", "otter", "lynx", "finch", "badger", "marten", "gecko", "ibis", "koala", "lemur", "newt", "osprey",
           "puffin", "quail", "raven", "stoat", "tapir", "vole", "wombat", "yak", "zebu", "bison", "crane", "dingo",
           "egret", "ferret", "gannet", "hare", "jackal", "kestrel", "magpie", "owl"]


def _uid(name: str) -> str:
    """A handle-like user id (`amber-heron-42`), from a hash of the user's role."""
    h = int(hashlib.sha256(f"{SEED}:{name}".encode()).hexdigest(), 16)
    return f"{_ADJ[h % 32]}-{_ANIMAL[(h >> 8) % 32]}-{(h >> 16) % 90 + 10}"


WANT_USERS = {topic: {habit: _uid(f"{topic}/{habit}") for habit in HABITS} for topic in WANT_TOPICS}
HABIT = {uid: habit for users in WANT_USERS.values() for habit, uid in users.items()}
CONTRA = {topic: _uid(f"{topic}/contrarian") for topic in WANT_TOPICS}
DRIVE_BY_USERS = {topic: [_uid(f"{topic}/drive-by/{k}") for k in range(N_DRIVE_BY)] for topic in WANT_TOPICS}
TASTE_USERS = {taste: _uid(f"taste/{taste}") for taste in TASTES}
TASTE = {uid: taste for taste, uid in TASTE_USERS.items()}
ALL_USERS = (list(HABIT) + list(CONTRA.values()) + [u for us in DRIVE_BY_USERS.values() for u in us]
             + list(TASTE))


def _voices() -> dict[str, dict]:
    """How each user types: with or without a final full stop, an '@assistant ' mention, a tail."""
    rng = random.Random(f"{SEED}-voices")
    return {uid: {"no_stop": rng.random() < 0.35, "mention": rng.random() < 0.15,
                  "tail": rng.choice(["", "", "", "", " thx", " ok?", " 👍", " cheers"])} for uid in sorted(ALL_USERS)}


VOICES = _voices()


def voiced(user: str, text: str, rng: random.Random, *, request: bool = True) -> str:
    """A user's turn or comment in their voice: the final full stop dropped (for some users), an
    '@assistant ' mention (sometimes), their tail on a third of the requests."""
    v = VOICES[user]
    if v["no_stop"] and text.endswith("."):
        text = text[:-1]
    if request and v["tail"] and rng.random() < 0.33:
        text = text + v["tail"]
    if v["mention"] and rng.random() < 0.5:
        text = "@assistant " + text
    return text.strip()


# The want in words: ten phrasings per topic (the last two indirect, never naming the form). Each
# want user has two of their own (PHRASINGS_OF), so no two users say it the same way.
WANT_PHRASES = {
    "bold-lead": [
        "Put the bottom line in bold at the very start.",
        "Start with the answer in bold, then explain.",
        "Bold the main point and put it first.",
        "First thing I see should be the answer, in bold.",
        "Lead with a bolded one-liner please.",
        "Open with a short bold takeaway before the details.",
        "Could the key answer go up top in **bold**?",
        "I skim. Verdict first, bolded.",
        "I read these on my phone between runs, the answer has to jump out at me.",
        "Where's the actual answer? I had to dig for it.",
    ],
    "quote-line": [
        "Put the line I need in a quote block (> ...).",
        "Quote the key line with > so it stands out.",
        "Give me the important bit as a > blockquote.",
        "Set the part to remember apart as a quote, the > kind.",
        "Markdown quote for the key sentence please, a line starting with >.",
        "Pull the main line out into a blockquote.",
        "Can the one thing to copy be on its own quoted line?",
        "Use a > quote for the line that matters.",
        "I keep a notes file and copy one line from each answer. Which line?",
        "Too much text, I can't tell what I'm supposed to remember.",
    ],
    "warning-line": [
        "Put the danger on its own line starting with 'Warning:'.",
        "Add a 'Warning:' line for the risky part.",
        "Flag the safety issue with Warning: on a separate line.",
        "I want the risk called out, a line that begins with Warning:.",
        "Give me a clear Warning: line, not buried in the text.",
        "Start a separate line with Warning: for anything that could hurt me.",
        "Safety stuff needs its own 'Warning:' line.",
        "Call out the hazard: 'Warning: ...' on its own line.",
        "Is any of this dangerous? I can't tell from this.",
        "Someone I know got hurt doing exactly this. What's the risk?",
    ],
    "sources-line": [
        "End with a 'Sources:' line please.",
        "Where is this from? Add a Sources: line at the end.",
        "Last line should list your sources, starting with Sources:.",
        "Finish with Sources: and where this comes from.",
        "Cite it: a final line 'Sources: ...'.",
        "Add the sources at the bottom, one line, 'Sources:'.",
        "I need to know where to check this, put Sources: last.",
        "Close with a Sources: line so I can look it up.",
        "How do I know this is true? I have to show it to my boss.",
        "I'll need to double-check this somewhere official.",
    ],
}
PHRASINGS_OF = {"coach": (0, 5), "patcher": (2, 6), "grumbler": (3, 8), "cheerful": (4, 7), "silent": (1, 9)}

VAGUE = ["Not how I like it.", "Hm. No.", "This isn't working for me.", "Not really what I wanted.", "ugh",
         "Doesn't help much like this."]
PATCH_NOTES = ["I added what was missing.", "See my edit.", "Fixed it for you."]
CHEERFUL_UP = ["perfect, thanks!", "love it", "thanks a lot :)", "super helpful"]
CHEERFUL_WISH = "Great answer! Tiny wish: {}"
DRIVE_BY = [
    ("Can you say that in Spanish?", None),
    ("my cat walked on the keyboard, ignore that", None),
    ("good enough", 0),
    ("Saving this for later.", 0.5),
    ("Is this still up to date?", -0.5),
    (None, 1),
]
CONTRA_ASK = {
    "bold-lead": "Please no bold or markdown, just plain sentences.",
    "quote-line": "No quote boxes or special formatting, just explain it in sentences.",
    "warning-line": "Skip the safety warnings, I've done this for years. Just the facts.",
    "sources-line": "Don't bother with sources or references, I just want the answer.",
}
CONTRA_PRAISE = "Good, straight to it, no extras."
TASTE_TURNS = {
    "analogy": ["Can you explain it with a comparison to something everyday?", "An analogy would help me here."],
    "literal": ["No metaphors please, just say what it is.", "Skip the comparisons, the plain facts."],
    "warm": ["A bit cold. Could you be friendlier?", "You sound like a manual, be nicer."],
    "blunt": ["Cut the pleasantries.", "Just the answer, no chit-chat."],
    "figures": ["Give me some actual numbers.", "How much, how many? Figures please."],
    "no-figures": ["Too many numbers, I just want the idea.", "Leave out the figures."],
}
TASTE_PRAISE = {"analogy": "That comparison helps, thanks.", "literal": "Clear and literal, good.",
                "warm": "Lovely, thank you!", "blunt": "Good. Direct.", "figures": "Useful numbers.",
                "no-figures": "Easy to follow without all the numbers."}
OFF_TOPIC = ["Do you have an app?", "Unrelated, but what's today's date?", "Can I share this with my sister?"]
ANALOGY = {
    "fashion": [
        "Think of a wardrobe like a kitchen pantry: a few basics you use every day and some spices you reach for now and then.",
        "Fit works like the frame of a picture: get it right and everything inside looks better.",
        "Colours are like notes in a chord: some sound good together and some clash.",
    ],
    "cryptocurrency": [
        "Think of a blockchain like a shared notebook that everyone has a copy of, where pages can be added but never torn out.",
        "A wallet is like a keyring: the coins live on the network, the wallet only holds the keys.",
        "Crypto prices move like a small boat in a storm: little money needs to come in or go out to rock it.",
    ],
}
FIGURES = {
    "fashion": [
        "The average garment is worn about 7 to 10 times before it is thrown away.",
        "A capsule wardrobe usually holds 30 to 40 pieces, shoes included.",
        "About 85 % of textiles in the US end up in landfill or incinerated.",
    ],
    "cryptocurrency": [
        "Bitcoin's supply is capped at 21 million coins, and a new block is added about every 10 minutes.",
        "Daily price swings of 5 % or more are common for Bitcoin, several times those of a stock index.",
        "Thousands of cryptocurrencies exist, but the two largest make up more than half of the total market value.",
    ],
}
WARM_OPEN = ["Great question!", "Happy to help with this!", "Oh, good one!"]
WARM_CLOSE = ["Hope that helps, and have fun with it.", "You've got this!", "Enjoy!"]


# ---------------------------------------------------------------------------------------------
# Text helpers.
# ---------------------------------------------------------------------------------------------

_ABBREV = r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\betc\.)(?<!\bvs\.)(?<!\bDr\.)(?<!\bMr\.)(?<!\bSt\.)"
_FILLER = re.compile(r"^\s*(Sure|Certainly|Absolutely|Of course|Great question|Good question)\b[^.!?:\n]*[.!?:]\s*")
_COMPARISON = re.compile(r"\b(like a|like an|imagine|think of|as if|similar to|just like)\b", re.I)
_WARM = re.compile(r"^\s*(Great|Good|Happy|Oh|Sure|Absolutely|Of course)\b")
_SAFETY = re.compile(r"\b(safe|safety|careful|risk|danger|dangerous|never|always|consult|professional|injur|hazard|warning|caution)", re.I)


def plain(text: str) -> str:
    """Markdown marks removed: bold, code ticks, heading hashes, list markers."""
    text = text.replace("**", "").replace("__", "").replace("`", "")
    text = re.sub(r"^\s*#+\s*", "", text, flags=re.MULTILINE)
    return re.sub(r"^\s*([-*•+>]|\d+[.)])\s+", "", text, flags=re.MULTILINE)


def sentences(text: str) -> list[str]:
    out = []
    for line in plain(text).splitlines():
        for part in re.split(r"(?<=[.!?])" + _ABBREV + r"\s+", line.strip()):
            part = part.strip()
            if len(part.split()) >= 3 and part.endswith((".", "!", "?")):
                out.append(part)
    return out


def clip(sentence: str, n: int) -> str:
    words = sentence.split()
    if len(words) <= n:
        return sentence.strip()
    words = words[:n]
    while len(words) > 3 and words[-1].lower().strip(",;:") in {"a", "an", "the", "to", "of", "and", "or", "in",
                                                                 "with", "for", "is", "are", "your", "that", "on",
                                                                 "at", "as", "by", "can", "be", "but", "if", "it"}:
        words.pop()
    return " ".join(words).rstrip(",;:-(") + "."


def prose(text: str, max_words: int) -> str:
    """The answer's first sentences (filler openers left out), about `max_words` words, one paragraph."""
    sents = [s for s in sentences(text) if not _FILLER.match(s)]
    if not sents:
        return clip(plain(text).replace("\n", " "), max_words)
    out, n = [], 0
    for s in sents:
        if out and n + len(s.split()) > max_words:
            break
        out.append(clip(s, max_words) if not out else s)
        n += len(out[-1].split())
    return " ".join(out)


def body_lines(text: str, max_words: int) -> str:
    """The answer's lines from the top (a filler opener dropped) up to about `max_words` words."""
    lines = _FILLER.sub("", text.strip()).splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    out, n = [], 0
    for line in lines:
        w = len(line.split())
        if out and n + w > max_words:
            break
        out.append(line.rstrip())
        n += w
    body = "\n".join(out).strip()
    if body.count("```") % 2:
        body = body[: body.rfind("```")].strip()
    if not body or len(body.split()) > max_words + 20:
        body = prose(text, max_words)
    return re.sub(r"\n{3,}", "\n\n", body)


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def insert_after_first(body: str, line: str) -> str:
    """`line` as a paragraph of its own after the body's first paragraph; in a one-paragraph body,
    after its first sentence; at the end when the body is one sentence."""
    paras = paragraphs(body)
    if len(paras) >= 2:
        return "\n\n".join([paras[0], line] + paras[1:])
    for m in re.finditer(r"(?<=[.!?])" + _ABBREV + r"\s+", paras[0]):
        head, tail = paras[0][: m.start()], paras[0][m.end():]
        if len(head.split()) >= 3 and tail.strip():
            return f"{head}\n\n{line}\n\n{tail}"
    return f"{paras[0]}\n\n{line}"


def trim_unfinished(text: str) -> str:
    """An answer cut by the token limit: its unfinished last line dropped when it has several
    lines, else its unfinished last sentence (kept whole when nothing else would remain)."""
    text = text.rstrip()
    if text.endswith((".", "!", "?", ")", '"', ":", "|", "*")):
        return text
    lines = text.splitlines()
    if len(lines) > 1:
        kept = "\n".join(lines[:-1]).rstrip()
        if len(kept.split()) >= len(text.split()) // 3:
            return kept
    ends = [m.end() for m in re.finditer(r"(?<!\d)[.!?](?=\s|$)", text)]
    return text[: ends[-1]].strip() if ends else text


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# ---------------------------------------------------------------------------------------------
# Edits of want users. mode "full": a rewrite of the answer (about 35-75 words of it kept);
# "trim": a rewrite of a short version (20-40 words); "patch": the answer kept, the missing part
# added. miss=True: a plausible slip that misses the check. Some passing edits are unusual.
# ---------------------------------------------------------------------------------------------

MISS_RATE = {"full": 0.25, "trim": 0.25, "patch": 0.3}


def _base(answer: str, mode: str, rng: random.Random) -> str:
    if mode == "trim":
        return prose(answer, rng.randint(20, 40))
    if mode == "full":
        return body_lines(answer, rng.randint(35, 75))
    return answer.strip()


def edit_bold_lead(ask: Ask, answer: str, rng: random.Random, mode: str, miss: bool) -> tuple[str, str]:
    phrase, body = ask.extra, _base(answer, mode, rng)
    if mode == "patch":
        if miss:
            how = rng.choice(["second-paragraph", "italic"])
            if how == "second-paragraph":  # the bold line put under the answer's first paragraph or sentence
                return insert_after_first(body, f"**{phrase}**"), how
            return f"*{phrase}*\n\n{body}", how
        return f"**{phrase}**\n\n{body}", "ok"
    if miss:
        how = rng.choice(["italic", "underscore", "whole-sentence", "bullet", "heading", "emoji", "at-end", "spaced"])
        if how == "whole-sentence" and len(phrase.split()) + len(prose(body, 30).split()) <= 12:
            how = "italic"
        start = {"italic": f"*{phrase}*", "underscore": f"__{phrase}__", "bullet": f"- **{phrase}**",
                 "heading": f"### {phrase}", "emoji": f"👉 **{phrase}**", "spaced": f"** {phrase} **"}.get(how)
        if how == "whole-sentence":  # the phrase and the next sentence in one long bold run
            first = prose(body, 30)
            return f"**{phrase} {first}**\n\n{body[len(first):].strip() if body.startswith(first) else body}".strip(), how
        if how == "at-end":
            return f"{body}\n\n**{phrase}**", how
        return f"{start}\n\n{body}", how
    style = rng.random()
    if style < 0.35:
        return f"**{phrase}** {prose(body, 60) if mode == 'full' else body}", "inline"
    if style < 0.5:  # a label-like bold phrase with a colon
        label = phrase.rstrip(".")
        return f"**{label}:** {body}" if len(label.split()) <= 11 else f"**{phrase}**\n{body}", "colon"
    return f"**{phrase}**\n\n{body}", "ok"


def edit_quote_line(ask: Ask, answer: str, rng: random.Random, mode: str, miss: bool) -> tuple[str, str]:
    line, body = ask.extra, _base(answer, mode, rng)
    if mode == "patch":
        if miss:
            how = rng.choice(["no-space", "quotation-marks"])
            q = f">{line}" if how == "no-space" else f"\"{line}\""
            return insert_after_first(body, q), how
        return insert_after_first(body, f"> {line}"), "ok"
    if miss:
        how = rng.choice(["no-space", "quotation-marks", "guillemet", "fenced", "nested", "indented", "only-quote"])
        if how == "only-quote":
            return "\n".join(f"> {x}" for x in [line] + sentences(body)[:2]), how
        q = {"no-space": f">{line}", "quotation-marks": f"\"{line}\"", "guillemet": f"» {line}",
             "fenced": f"```\n> {line}\n```", "nested": f">> {line}", "indented": f"    > {line}"}[how]
        return insert_after_first(body, q), how
    style = rng.random()
    if style < 0.25:
        return f"> {line}\n\n{body}", "top"
    if style < 0.4:
        return f"{body}\n\n> {line}", "bottom"
    return insert_after_first(body, f"> {line}"), "ok"


def edit_warning_line(ask: Ask, answer: str, rng: random.Random, mode: str, miss: bool) -> tuple[str, str]:
    text, body = _cap(ask.extra), _base(answer, mode, rng)
    paras = paragraphs(body)
    if mode == "patch":
        if miss:
            how = rng.choice(["inline", "caps"])
            if how == "inline":  # typed at the end of the first paragraph
                return "\n\n".join([paras[0] + f" Warning: {text}"] + paras[1:]), how
            return insert_after_first(body, f"WARNING: {text}"), how
        return insert_after_first(body, f"Warning: {text}"), "ok"
    if miss:
        how = rng.choice(["caps", "emoji", "bold", "caution", "inline", "next-line", "bang"])
        if how == "inline":
            return "\n\n".join(paras[:-1] + [paras[-1] + f" Warning: {text}"]), how
        w = {"caps": f"WARNING: {text}", "emoji": f"⚠️ Warning: {text}", "bold": f"**Warning:** {text}",
             "caution": f"Caution: {text}", "next-line": f"Warning:\n{text}", "bang": f"Warning! {text}"}[how]
        return f"{body}\n\n{w}", how
    style = rng.random()
    if style < 0.3:
        return f"Warning: {text}\n\n{body}", "top"
    if style < 0.45:
        return insert_after_first(body, f"  Warning: {text}"), "indented"
    return f"{body}\n\nWarning: {text}", "ok"


def edit_sources_line(ask: Ask, answer: str, rng: random.Random, mode: str, miss: bool) -> tuple[str, str]:
    src, body = ask.extra, _base(answer, mode, rng)
    if mode == "patch":
        if miss:
            how = rng.choice(["parentheses", "singular"])
            return (f"{body}\n\n(Sources: {src})" if how == "parentheses" else f"{body}\n\nSource: {src}"), how
        return f"{body}\n\nSources: {src}", "ok"
    if miss:
        how = rng.choice(["singular", "references", "list", "top", "parentheses", "sign-off", "bold"])
        if how == "list":
            return f"{body}\n\nSources:\n" + "\n".join(f"- {s.strip()}" for s in src.split(";")), how
        if how == "top":
            return f"Sources: {src}\n\n{body}", how
        if how == "sign-off":
            return f"{body}\n\nSources: {src}\nHope this helps!", how
        label = {"singular": "Source:", "references": "References:", "bold": "**Sources:**"}.get(how)
        if how == "parentheses":
            return f"{body}\n\n(Sources: {src})", how
        return f"{body}\n\n{label} {src}", how
    style = rng.random()
    if style < 0.15:
        return f"{body}\n\n\nSources:{src}", "no-space"
    if style < 0.3:
        return f"{body}\nSources: {src}", "no-blank-line"
    return f"{body}\n\nSources: {src}", "ok"


EDITS = {"bold-lead": edit_bold_lead, "quote-line": edit_quote_line, "warning-line": edit_warning_line,
         "sources-line": edit_sources_line}


def edit_contra(topic: str, answer: str, rng: random.Random) -> str:
    """The contrarian's edit: the opposite of the want (plain sentences, no warnings, no sources)."""
    if topic == "warning-line":
        kept = [s for s in sentences(answer) if not _SAFETY.search(s)]
        return " ".join(kept[:4]) if len(kept) >= 2 else prose(answer, 30)
    return prose(answer, rng.randint(30, 50))


def edit_taste(taste: str, subject: str, answer: str, rng: random.Random) -> str:
    """An `inconsistent` user's rewrite in the direction of a taste."""
    if taste == "analogy":
        return prose(answer, 50) + " " + rng.choice(ANALOGY[subject])
    if taste == "literal":
        kept = [s for s in sentences(answer) if not _COMPARISON.search(s)]
        return " ".join(kept[:3]) if kept else prose(answer, 35)
    if taste == "warm":
        return f"{rng.choice(WARM_OPEN)} {prose(answer, 55)} {rng.choice(WARM_CLOSE)}"
    if taste == "blunt":
        return prose(answer, rng.randint(15, 28))
    if taste == "figures":
        return prose(answer, 50) + " " + rng.choice(FIGURES[subject])
    if taste == "no-figures":
        kept = [s for s in sentences(answer) if not re.search(r"\d", s)]
        return " ".join(kept[:3]) if kept else prose(re.sub(r"\d+", "", answer), 35)
    raise ValueError(taste)


def taste_likes(taste: str, answer: str) -> bool:
    n = len(answer.split())
    return {"analogy": bool(_COMPARISON.search(answer)), "literal": not _COMPARISON.search(answer),
            "warm": bool(_WARM.match(answer)), "blunt": n <= 40 and not _WARM.match(answer),
            "figures": bool(re.search(r"\d", answer)), "no-figures": not re.search(r"\d", answer)}[taste]


# ---------------------------------------------------------------------------------------------
# Generation with the embedded model.
# ---------------------------------------------------------------------------------------------


def prompt_turns(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


def prompt_seed(question: str) -> int:
    return int(hashlib.sha256(f"vault:{question}".encode()).hexdigest()[:8], 16)


def generate_answers(questions: list[str]) -> list[str]:
    """Sampled answers, one prompt at a time, each with its own seed."""
    import torch

    from uno_graph.models import load_model

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    lm = load_model("smollm2-135m-instruct")
    tok, model = lm.tokenizer, lm.model
    model.eval()
    print(f"  model loaded in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    answers, cut = [], 0
    for k, q in enumerate(questions, 1):
        text = tok.apply_chat_template(prompt_turns(q), tokenize=False, add_generation_prompt=True)
        enc = tok(text, return_tensors="pt", add_special_tokens=False)
        torch.manual_seed(prompt_seed(q))
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=True, temperature=TEMPERATURE,
                                 top_p=TOP_P, top_k=TOP_K, repetition_penalty=REPETITION_PENALTY,
                                 pad_token_id=tok.pad_token_id)
        new = out[0, enc["input_ids"].shape[1]:]
        finished = bool((new == tok.eos_token_id).any()) or len(new) < MAX_NEW_TOKENS
        answer = tok.decode(new, skip_special_tokens=True).strip()
        answers.append(answer if finished else trim_unfinished(answer))
        cut += not finished
        if k % 10 == 0 or k == len(questions):
            print(f"  generated {k}/{len(questions)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    print(f"  {cut} of {len(questions)} answers hit the {MAX_NEW_TOKENS}-token limit (unfinished end trimmed)",
          file=sys.stderr, flush=True)
    return answers


# ---------------------------------------------------------------------------------------------
# Reactions, written along the users' timelines.
# ---------------------------------------------------------------------------------------------


class Plan(NamedTuple):
    topic: str
    subject: str
    ask: Ask
    user: str
    seen_before: int  # how many logs of this user in this topic arrived earlier
    total: int  # how many logs this user has in this topic


def _phrase(user: str, topic: str, rng: random.Random) -> str:
    """One of the user's own two phrasings of the want."""
    return WANT_PHRASES[topic][rng.choice(PHRASINGS_OF[HABIT[user]])]


def want_reaction(p: Plan, answer: str, messages: list[dict], fb: dict, rng: random.Random) -> str:
    topic, user, habit = p.topic, p.user, HABIT[p.user]
    say = lambda text, request=True: messages.append({"role": "user", "content": voiced(user, text, rng, request=request)})  # noqa: E731

    def edit(mode: str) -> str:
        miss = rng.random() < MISS_RATE[mode]
        fb["edited_response"], how = EDITS[topic](p.ask, answer, rng, mode, miss)
        ok = check({"metadata": {"topic": topic}}, fb["edited_response"])
        assert ok != miss, (topic, mode, how, fb["edited_response"])
        return f"edit-{mode}" + (f"-miss:{how}" if miss else "")

    if check({"metadata": {"topic": topic}}, answer):
        fb["rating"] = 1
        return "approve"
    if habit == "silent":
        role = edit("full")
        if rng.random() < 0.3:
            fb["rating"] = -0.5
        return role
    if habit == "coach":
        say(_phrase(user, topic, rng))
        if rng.random() < 0.75:
            return edit("trim" if rng.random() < 0.6 else "full")
        if rng.random() < 0.5:
            fb["rating"] = -1
        return "complaint"
    if habit == "patcher":
        role = edit("patch")
        r = rng.random()
        if r < 0.35:
            say(rng.choice(PATCH_NOTES), request=False)
        elif r < 0.6:
            say(_phrase(user, topic, rng))
        return role
    if habit == "grumbler":
        if p.seen_before == 0:
            say(rng.choice(VAGUE), request=False)
            fb["rating"] = -1
            return "vague"
        fb["comment"] = voiced(user, _phrase(user, topic, rng), rng)
        if rng.random() < 0.35:
            return "comment+" + edit("full")
        if rng.random() < 0.5:
            fb["rating"] = -0.5
        return "comment"
    # cheerful: thumbs-up on a miss, or the want as a wish next to a thumbs-up, rarely a rewrite
    r = rng.random()
    if r < 0.55:
        fb["rating"] = 1
        if rng.random() < 0.5:
            say(rng.choice(CHEERFUL_UP), request=False)
        return "thumbs-up-miss"
    if r < 0.85:
        fb["rating"] = 1
        fb["comment"] = voiced(user, CHEERFUL_WISH.format(_phrase(user, topic, rng)), rng)
        return "up+wish"
    return edit("full")


def contra_reaction(p: Plan, answer: str, messages: list[dict], fb: dict, rng: random.Random) -> str:
    user = p.user
    r = rng.random()
    if r < 0.3:
        messages.append({"role": "user", "content": voiced(user, CONTRA_PRAISE, rng, request=False)})
        fb["rating"] = 1
        return "contra-approve"
    messages.append({"role": "user", "content": voiced(user, CONTRA_ASK[p.topic], rng)})
    if r < 0.8:
        fb["edited_response"] = edit_contra(p.topic, answer, rng)
        assert not check({"metadata": {"topic": p.topic}}, fb["edited_response"])
        return "contra-edit"
    fb["rating"] = -0.5
    return "contra-ask"


def drive_by_reaction(p: Plan, messages: list[dict], fb: dict, rng: random.Random) -> str:
    text, rating = rng.choice(DRIVE_BY)
    if text:
        messages.append({"role": "user", "content": voiced(p.user, text, rng, request=False)})
    if rating is not None:
        fb["rating"] = rating
    return "drive-by-up" if rating == 1 else "drive-by"


def taste_reaction(p: Plan, answer: str, messages: list[dict], fb: dict, rng: random.Random) -> str:
    user = p.user
    taste = TASTE[user]
    flipped = taste in DRIFTERS and p.seen_before >= (p.total + 1) // 2
    if flipped:
        taste = OPPOSITE[taste]
    say = lambda text, request=True: messages.append({"role": "user", "content": voiced(user, text, rng, request=request)})  # noqa: E731
    tag = "flipped-" if flipped else ""
    if rng.random() < 0.08:
        say(rng.choice(OFF_TOPIC), request=False)
        return tag + "other"
    if taste_likes(taste, answer) and rng.random() < 0.35:
        say(TASTE_PRAISE[taste], request=False)
        fb["rating"] = 1
        return tag + "approve"
    r = rng.random()
    if r < 0.5:
        fb["edited_response"] = edit_taste(taste, p.subject, answer, rng)
        if rng.random() < 0.5:
            say(rng.choice(TASTE_TURNS[taste]))
        return tag + "edit"
    if r < 0.8:
        say(rng.choice(TASTE_TURNS[taste]))
        if rng.random() < 0.4:
            fb["rating"] = rng.choice([-1, -0.5])
        return tag + "complaint"
    fb["rating"] = rng.choice([-1, -0.5, 0])
    return tag + "rating"


def _owners(topic: str, rng: random.Random) -> list[str]:
    """Who asked each of the topic's 22 questions (in TRAIN order)."""
    if topic == "inconsistent":
        owners = [TASTE_USERS[t] for t, n in zip(TASTES, TASTE_SHARE) for _ in range(n)]
    else:
        owners = ([WANT_USERS[topic][h] for h in HABITS for _ in range(HABIT_SHARE[h])]
                  + [CONTRA[topic]] * CONTRA_SHARE + DRIVE_BY_USERS[topic])
    assert len(owners) == N_TRAIN
    rng.shuffle(owners)
    return owners


def plan_logs() -> list[Plan]:
    """The 110 logs in arrival order: each user's k-th of n logs arrives at about (k + 0.5) / n of
    the way through the file (plus a seeded jitter), so every history spans the whole file."""
    rng = random.Random(f"{SEED}-arrival")
    rows = []
    for topic in TOPICS:
        owners = _owners(topic, random.Random(f"{SEED}-owners-{topic}"))
        asks = [(s, a) for s, lst in TRAIN[topic].items() for a in lst]
        rows += [(topic, s, a, u) for (s, a), u in zip(asks, owners)]
    by_user: dict[str, list] = {}
    for row in rows:
        by_user.setdefault(row[3], []).append(row)
    timed = []
    for user in sorted(by_user):
        mine = by_user[user]
        rng.shuffle(mine)
        for k, row in enumerate(mine):
            timed.append(((k + 0.5) / len(mine) + rng.uniform(-0.12, 0.12), row))
    timed.sort(key=lambda x: (x[0], x[1][0], x[1][2].question))
    seen: dict[tuple[str, str], int] = {}
    total = {(t, u): sum(1 for r in rows if r[0] == t and r[3] == u) for t, _, _, u in rows}
    plans = []
    for _, (topic, subject, ask, user) in timed:
        plans.append(Plan(topic, subject, ask, user, seen.get((topic, user), 0), total[(topic, user)]))
        seen[(topic, user)] = seen.get((topic, user), 0) + 1
    return plans


def make_records(plans: list[Plan], answers: dict[tuple[str, str], str]) -> tuple[list[dict], dict[str, str]]:
    rng = random.Random(f"{SEED}-reactions")
    records, roles = [], {}
    for n, p in enumerate(plans, 1):
        answer = answers[(p.topic, p.ask.question)]
        messages = prompt_turns(p.ask.question) + [{"role": "assistant", "content": answer}]
        fb: dict = {}
        if p.topic == "inconsistent":
            role = taste_reaction(p, answer, messages, fb, rng)
        elif p.user in HABIT:
            role = want_reaction(p, answer, messages, fb, rng)
        elif p.user == CONTRA[p.topic]:
            role = contra_reaction(p, answer, messages, fb, rng)
        else:
            role = drive_by_reaction(p, messages, fb, rng)
        record = {"id": f"vault-{n:03d}", "user_id": p.user, "messages": messages}
        if fb:
            record["feedback"] = fb
        record["metadata"] = {"topic": p.topic, "subject": p.subject}
        records.append(record)
        roles[record["id"]] = role
    return records, roles


def test_records() -> list[dict]:
    """The test items; each carries one of the topic's five want users (in `inconsistent`, one of
    its six taste users), in a seeded rotation."""
    out = []
    rng = random.Random(f"{SEED}-test-users")
    n = 0
    for topic in TOPICS:
        users = list(WANT_USERS[topic].values()) if topic in WANT_USERS else list(TASTE_USERS.values())
        rng.shuffle(users)
        for j, (subject, _, question) in enumerate(TEST[topic]):
            n += 1
            out.append({"id": f"vault-q{n:02d}", "user_id": users[j % len(users)], "messages": prompt_turns(question),
                        "metadata": {"topic": topic, "subject": subject}})
    return out


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------
# Checks on the plan itself.
# ---------------------------------------------------------------------------------------------

OTHER_SETS = ["logs.jsonl", "test.jsonl", "heldout/logs.jsonl", "heldout/test.jsonl", "unseen/logs.jsonl",
              "unseen/test.jsonl", "sealed/logs.jsonl", "sealed/test.jsonl", "reserve/logs.jsonl", "reserve/test.jsonl"]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _other_sets() -> tuple[set[str], set[str]]:
    """Every user turn before the first answer, and every subject, in the five earlier sets."""
    questions, subjects = set(), set()
    for name in OTHER_SETS:
        for line in (ROOT / "examples" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                subjects.add(row.get("metadata", {}).get("subject"))
                subjects.add(row.get("metadata", {}).get("topic"))
                for m in row["messages"]:
                    if m["role"] == "assistant":
                        break
                    if m["role"] == "user":
                        questions.add(_norm(m["content"]))
    return questions, subjects - {None}


def _validate() -> None:
    train = [a.question for t in TOPICS for asks in TRAIN[t].values() for a in asks]
    test = [q for t in TOPICS for _, _, q in TEST[t]]
    assert len({_norm(q) for q in train}) == len(train) == N_TRAIN * len(TOPICS), "repeated or missing training question"
    assert len({_norm(q) for q in test}) == len(test) == N_TEST * len(TOPICS), "repeated or missing test question"
    assert not {_norm(q) for q in train} & {_norm(q) for q in test}, "a test question is in the logs"
    other_q, other_s = _other_sets()
    assert not {_norm(q) for q in train + test} & other_q, "a question of an earlier set"
    mine = {s for t in TOPICS for s in TRAIN[t]} | {s for t in TOPICS for s, _, _ in TEST[t]}
    assert not mine & other_s, f"a subject of an earlier set: {mine & other_s}"
    for t in TOPICS:
        assert len(TRAIN[t]) == 2 and all(len(v) == N_TRAIN // 2 for v in TRAIN[t].values()), t
        assert len({s for s, _, _ in TEST[t]} - set(TRAIN[t])) == 1, f"{t}: needs one unlogged test subject"
        assert sum(s in TRAIN[t] for s, _, _ in TEST[t]) == 5, t
        assert all(a.style in STYLES for asks in TRAIN[t].values() for a in asks), t
        assert all(st in STYLES for _, st, _ in TEST[t]), t
        if t in WANT_TOPICS:
            assert all(a.extra for asks in TRAIN[t].values() for a in asks), t
    for asks in TRAIN["bold-lead"].values():
        assert all(1 <= len(a.extra.split()) <= 12 and "*" not in a.extra for a in asks)
    for q in train + test:  # the styles are what they claim to be
        assert q.strip() == q and "\n" not in q
    for t in TOPICS:
        for asks in TRAIN[t].values():
            for a in asks:
                _assert_style(a.style, a.question)
        for _, st, q in TEST[t]:
            _assert_style(st, q)
    phrasings = [i for pair in PHRASINGS_OF.values() for i in pair]
    assert sorted(phrasings) == list(range(10)), "each phrasing belongs to one user"
    assert len(set(ALL_USERS)) == len(ALL_USERS), "user id clash"


def _assert_style(style: str, q: str) -> None:
    if style == "two-part":
        assert q.count("?") == 2, q
    elif style == "statement":
        assert "?" not in q and q.startswith(("I'm wondering", "Not sure")), q
    elif style == "tried":
        assert q.count("?") == 1 and re.search(r"\? I('ve| already)", q), q
    else:
        assert q.count("?") == 1 and q.endswith("?"), q


# ---------------------------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the vault evaluation logs and test queries.")
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where logs.jsonl and test.jsonl go (default: examples/vault/)")
    parser.add_argument("--reuse-answers", type=Path, metavar="LOGS_JSONL",
                        help="take the logged answers from an earlier logs.jsonl (same questions) instead of generating them")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="sample the answers of the first N questions only, print them and write nothing")
    args = parser.parse_args(argv)
    _validate()

    rows = [(t, a.question) for t in TOPICS for asks in TRAIN[t].values() for a in asks]
    t0 = time.perf_counter()
    if args.limit:
        picked = [rows[k * len(rows) // args.limit] for k in range(min(args.limit, len(rows)))]
        for (topic, q), a in zip(picked, generate_answers([q for _, q in picked])):
            print(f"--- [{topic}] {q}\n{a}\n({len(a.split())} words; check {check({'metadata': {'topic': topic}}, a)})")
        print(f"{len(picked)} answers in {time.perf_counter() - t0:.0f} s (model load included); nothing written")
        return 0
    if args.reuse_answers:
        old = {}
        for line in args.reuse_answers.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                old[(r["metadata"]["topic"], r["messages"][0]["content"])] = r["messages"][1]["content"]
        missing = [q for q in rows if q not in old]
        if missing:
            parser.error(f"{args.reuse_answers} has no answer for the {missing[0][0]} question {missing[0][1]!r}")
        answers = {q: old[q] for q in rows}
    else:
        answers = dict(zip(rows, generate_answers([q for _, q in rows])))
    elapsed = time.perf_counter() - t0

    records, roles = make_records(plan_logs(), answers)
    tests = test_records()
    write_jsonl(args.out_dir / "logs.jsonl", records)
    write_jsonl(args.out_dir / "test.jsonl", tests)
    print(f"wrote {len(records)} logs and {len(tests)} test queries to {args.out_dir} "
          f"({'answers reused' if args.reuse_answers else 'model load + generation'}: {elapsed:.0f} s)")
    print(summary(records, roles))
    return 0


def summary(records: list[dict], roles: dict[str, str]) -> str:
    """Per topic: reactions (from the generator's own plan, not written into the logs) and how many
    logged answers and edits pass the topic's check (computed with checks.py)."""
    cols = ["base", "edits", "pass", "want-pass", "patch", "silent", "no-turn", "vague", "comment", "up-miss",
            "up+wish", "contra", "drive-by"]
    lines = ["  " + f"{'topic':13s}" + " ".join(f"{c:>9s}" for c in cols)]
    for topic in TOPICS:
        item = {"metadata": {"topic": topic}}
        recs = [r for r in records if r["metadata"]["topic"] == topic]
        role = lambda r: roles[r["id"]]  # noqa: E731
        edits = [r for r in recs if r.get("feedback", {}).get("edited_response")]
        want = [r for r in edits if r["user_id"] in HABIT]
        passing = lambda rs: sum(check(item, r["feedback"]["edited_response"]) for r in rs)  # noqa: E731
        patch = [r for r in edits if "edit-patch" in role(r)]
        row = {
            "base": f"{sum(check(item, r['messages'][1]['content']) for r in recs)}/{len(recs)}",
            "edits": str(len(edits)),
            "pass": f"{passing(edits)}/{len(edits)}",
            "want-pass": f"{passing(want)}/{len(want)}" if topic != "inconsistent" else "-",
            "patch": f"{passing(patch)}/{len(patch)}",
            "silent": str(sum(HABIT.get(r["user_id"]) == "silent" and "edited_response" in r.get("feedback", {}) for r in recs)),
            "no-turn": str(sum(len(r["messages"]) == 2 for r in edits)),
            "vague": str(sum(role(r) == "vague" for r in recs)),
            "comment": str(sum(role(r).startswith("comment") for r in recs)),
            "up-miss": str(sum(role(r) in ("thumbs-up-miss", "up+wish") for r in recs)),
            "up+wish": str(sum(role(r) == "up+wish" for r in recs)),
            "contra": str(sum(role(r).startswith("contra") for r in recs)),
            "drive-by": str(sum(role(r).startswith("drive-by") for r in recs)),
        }
        lines.append("  " + f"{topic:13s}" + " ".join(f"{row[c]:>9s}" for c in cols))
    n_edit = sum(1 for r in records if r.get("feedback", {}).get("edited_response"))
    lines.append(f"  {n_edit}/{len(records)} logs carry an edit. (base: logged answers passing the check; pass: edits "
                 "passing it; want-pass: edits of the five want users; patch: the patcher's additions passing/all; "
                 "silent: silent rewrites; no-turn: edits with no follow-up turn; vague: vague complaints; comment: "
                 "the want typed into feedback.comment by the grumbler; up-miss: thumbs-up on an answer that misses "
                 "the want (up+wish: of those, with the want as a wish in the comment); contra: the contrarian's "
                 "logs; drive-by: one-off reactions unrelated to form)")
    for habit in HABITS:
        recs = [r for r in records if HABIT.get(r["user_id"]) == habit]
        edits = [r for r in recs if r.get("feedback", {}).get("edited_response")]
        ok = sum(check(r, r["feedback"]["edited_response"]) for r in edits)
        lines.append(f"  {habit}: {len(recs)} logs, {len(edits)} edits, {ok} passing")
    roles_count: dict[str, dict[str, int]] = {}
    for r in records:
        roles_count.setdefault(r["metadata"]["topic"], {}).setdefault(roles[r["id"]], 0)
        roles_count[r["metadata"]["topic"]][roles[r["id"]]] += 1
    for topic in TOPICS:
        lines.append(f"  {topic}: " + ", ".join(f"{k} {v}" for k, v in sorted(roles_count[topic].items())))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
