""".venv/bin/python examples/cellar/make_cellar_logs.py [--reuse-answers examples/cellar/logs.jsonl] [--limit N]

Writes the seventh evaluation-only set: `examples/cellar/logs.jsonl` (110 user logs, 22 per topic)
and `examples/cellar/test.jsonl` (12 test queries per topic, none of them a logged question). It is
kept sealed for one final evaluation: never tune anything on it. The topics and their checks
(`examples/cellar/checks.py`) were committed before this script generated anything.

How the procedure differs from the six earlier generators (`examples/make_example_logs.py`,
`examples/heldout/`, `examples/unseen/`, `examples/sealed/`, `examples/reserve/`, `examples/vault/`):

- Wants and subjects are new: exactly two short paragraphs (insurance, kayaking); an emoji-led list
  (soap making, ham radio); an ALL-CAPS title line restating the question (salsa dancing,
  dinosaurs); a `Difficulty: n/5` line (skateboarding, leathercraft); inconsistent (etiquette,
  volcanoes). The test set adds a third, unlogged subject per topic (archery, beer brewing, magic
  tricks, juggling, tattoos).
- Questions come in five styles: after the chatbot's own greeting (an assistant turn opens the
  conversation, then the user asks), search-engine keywords ("kayak paddle length calculator
  height"), a dispute to settle ("My dad says ..., I say .... Who's right?"), a callback to earlier
  advice ("Last time you told me ... Why ...?"), and an urgent one ("Help! ..."), mixed in every
  topic.
- Decoding: on-policy answers of the embedded SmolLM2-135M-Instruct (`uno_graph.models.load_model`,
  the conversation through the chat template), sampled with min-p sampling: temperature 0.8,
  min_p 0.1, top_k and top_p off, repetition_penalty 1.08, no_repeat_ngram_size 5 and
  max_new_tokens 160, one prompt at a time (no batching, no padding), each prompt with its own seed
  taken from a hash of the question (`torch.manual_seed(sha256("cellar:<question>")[:12])`), on one
  thread. An answer that hit the token limit is cut back to its last complete paragraph (when that
  keeps at least half of it), else to its last complete sentence.
- Logs arrive in sessions: a recurring user's logs come in one or two runs of consecutive logs (a
  first session somewhere in the first 55 % of the file, a second one 30-45 % later), ids
  `cellar-log-001` ... Users have ids of two capital letters and four digits (`GB-6990`). Per want
  topic five recurring want users with one habit each: `reshaper` (rewrites the answer into the
  form), `demonstrator` (shows the form with a tiny made-up sample in a follow-up turn, often
  rewrites too), `noter` (types the want into `feedback.comment`, with a quarter-step rating,
  sometimes fixes the answer minimally), `mumbler` (vague complaints, the want only in their last
  log, in words that do not name the form) and `fan` (thumbs-up on answers that miss, sometimes
  with the want as an afterthought in a follow-up turn, rarely a minimal fix with a thumbs-up); one
  recurring `contrarian` who wants the opposite; two one-off drive-by users. Each want user has two
  phrasings of the want of their own. About a quarter of the want-aimed edits miss the check, in
  ways no earlier set used. `inconsistent` is written by six users in three opposed pairs of tastes
  (a recommendation / the options, background / no background, hedged / confident), who on one
  log in five react in the opposite taste.

Deterministic: one seed per prompt and one thread; two runs give identical files.
`--reuse-answers OLD_LOGS` takes the logged answers from an earlier logs.jsonl (matched by topic and
question) and skips the model; `--answers-out FILE` saves the sampled answers in a file it reads. `--limit N` samples N of the questions only, prints them and writes
nothing (a dry run of the decoding; each answer is the one the full run logs, since every prompt
has its own seed).
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

from checks import check  # noqa: E402  (examples/cellar/checks.py)

SEED = "cellar-v1"
MAX_NEW_TOKENS = 160
TEMPERATURE = 0.8
MIN_P = 0.1
REPETITION_PENALTY = 1.08
NO_REPEAT_NGRAM_SIZE = 5
N_TRAIN = 22
N_TEST = 12

TOPICS = ["two-paragraphs", "emoji-list", "caps-title", "difficulty", "inconsistent"]
WANT_TOPICS = TOPICS[:4]
STYLES = ["greeted", "keywords", "dispute", "callback", "urgent"]


class Ask(NamedTuple):
    """A question, its style, and what a user who edits the answer adds for it: the title
    (`caps-title`) or the score and its reason (`difficulty`)."""

    style: str
    question: str
    extra: object = None


G, K, D, C, U = STYLES  # short names for the tables below

# ---------------------------------------------------------------------------------------------
# Questions: per topic two subjects of 11 logged questions each.
# ---------------------------------------------------------------------------------------------

TRAIN: dict[str, dict[str, list[Ask]]] = {
    "two-paragraphs": {
        "insurance": [
            Ask(G, "What's the difference between a deductible and a premium?"),
            Ask(G, "Do I need renters insurance if my landlord already has insurance?"),
            Ask(G, "Is it worth paying extra for zero-excess car hire insurance?"),
            Ask(K, "travel insurance cancelled flight claim"),
            Ask(K, "term vs whole life insurance"),
            Ask(D, "My dad says you should always take the lowest deductible, I say the highest. Who's right?"),
            Ask(D, "My flatmate says her insurance covers my laptop too because we share the flat, I say it doesn't. Which is it?"),
            Ask(C, "Last time you told me to compare quotes every year. Does switching insurers often hurt my rate?"),
            Ask(C, "You told me earlier that gap insurance is optional. When would I actually need it?"),
            Ask(U, "Help! A pipe burst in my kitchen, what do I do first for the insurance claim?"),
            Ask(U, "Quick! The rental car desk is asking if I want their insurance, should I say yes?"),
        ],
        "kayaking": [
            Ask(G, "How do I choose between a sit-on-top and a sit-inside kayak?"),
            Ask(G, "What should I wear for kayaking in cold water?"),
            Ask(K, "kayak paddle length calculator height"),
            Ask(K, "reenter kayak deep water solo"),
            Ask(K, "sea kayak vs recreational kayak tracking"),
            Ask(D, "My friend says you paddle with your arms, I say it's your core. Who's right?"),
            Ask(D, "My brother says a spray skirt is only for experts, I say everyone should use one. Which is it?"),
            Ask(C, "Last time you said to lean into the turn. Doesn't that make me capsize?"),
            Ask(C, "You told me to practise a wet exit. How do I do it without panicking?"),
            Ask(U, "Help! My kayak keeps spinning in circles, what am I doing wrong?"),
            Ask(U, "Urgent! The wind picked up and I'm planning to paddle across the lake in an hour, is that safe?"),
        ],
    },
    "emoji-list": {
        "soap-making": [
            Ask(G, "What safety gear do I need for making cold process soap?"),
            Ask(G, "Why did my soap turn out crumbly?"),
            Ask(G, "How long do I need to cure homemade soap?"),
            Ask(K, "lye calculator superfat percentage"),
            Ask(K, "soap trace too fast fix"),
            Ask(D, "My sister says melt and pour soap isn't real soapmaking, I say it is. Who's right?"),
            Ask(D, "My neighbour says you can skip the gloves with lye if you're careful, I say never. Which is it?"),
            Ask(C, "Last time you told me to use olive oil. Why is my bar so soft after a week?"),
            Ask(C, "You told me to insulate the mould. Why did my soap crack on top?"),
            Ask(U, "Help! I splashed lye solution on the counter, how do I clean it up?"),
            Ask(U, "Ugh! My soap batter seized in the pot, can I still save it?"),
        ],
        "ham-radio": [
            Ask(G, "How do I get my first amateur radio licence?"),
            Ask(G, "What's a good first handheld radio for a new ham?"),
            Ask(K, "ham radio call sign lookup"),
            Ask(K, "2 meter repeater offset tone"),
            Ask(K, "dipole antenna length 20m band"),
            Ask(D, "My uncle says you need Morse code for a ham licence, I say you don't anymore. Who's right?"),
            Ask(D, "My friend says a bigger antenna always beats more power, I say power matters more. Which is it?"),
            Ask(C, "Last time you told me to join a local club. What do they actually do at meetings?"),
            Ask(C, "You told me to start on the 2 meter band. How do I make my first contact?"),
            Ask(U, "Help! My radio shows a high SWR reading, should I stop transmitting?"),
            Ask(U, "Quick! There's a net starting in ten minutes, what do I say when I check in?"),
        ],
    },
    "caps-title": {
        "salsa-dancing": [
            Ask(G, "How do I do a basic salsa step?", "How to do the basic salsa step"),
            Ask(G, "What should I wear to my first salsa class?", "What to wear to your first salsa class"),
            Ask(G, "How do I find the beat in salsa music?", "Finding the beat in salsa music"),
            Ask(K, "salsa on1 vs on2", "Salsa on1 versus on2"),
            Ask(K, "cross body lead salsa steps", "The cross-body lead, step by step"),
            Ask(D, "My partner says the leader does all the work in salsa, I say the follower matters just as much. Who's right?",
                "Who does the work in salsa, leader or follower?"),
            Ask(D, "My friend says you can't learn salsa after 50, I say you can. Which is it?", "Can you learn salsa after 50?"),
            Ask(C, "Last time you told me to keep my frame firm. Why do my partners say my arms are too stiff?",
                "A firm frame without stiff arms"),
            Ask(C, "You told me to practise turns at home. How do I stop getting dizzy?", "How to stop getting dizzy in turns"),
            Ask(U, "Help! I have a salsa social tonight and I only know three moves, what do I do?",
                "Surviving a salsa social with three moves"),
            Ask(U, "Panic! My partner keeps stepping on my feet, how do we fix our timing?", "Fixing your timing with a partner"),
        ],
        "dinosaurs": [
            Ask(G, "Why did T. rex have such small arms?", "Why T. rex had such small arms"),
            Ask(G, "Were dinosaurs warm-blooded?", "Were dinosaurs warm-blooded?"),
            Ask(K, "dinosaur extinction asteroid evidence", "The evidence for the dinosaur-killing asteroid"),
            Ask(K, "biggest dinosaur ever found", "The biggest dinosaur ever found"),
            Ask(K, "feathered dinosaurs list", "Which dinosaurs had feathers"),
            Ask(D, "My son says birds are dinosaurs, my wife says they're only related. Who's right?", "Are birds dinosaurs?"),
            Ask(D, "My friend says Jurassic Park got velociraptors all wrong, I say it's close enough. Which is it?",
                "What Jurassic Park got wrong about velociraptors"),
            Ask(C, "Last time you told me Brontosaurus is a valid name again. Why was it dropped in the first place?",
                "Why the name Brontosaurus was dropped"),
            Ask(C, "You told me fossils form in sediment. How do scientists know how old they are?", "How scientists date fossils"),
            Ask(U, "Help! My kid's dinosaur project is due tomorrow, what's an easy dinosaur fact to build it around?",
                "An easy dinosaur fact for a school project"),
            Ask(U, "Quick! My daughter asked how we know what colour dinosaurs were, what do I tell her?",
                "How we know what colour dinosaurs were"),
        ],
    },
    "difficulty": {
        "skateboarding": [
            Ask(G, "How do I learn to ollie?", (3, "the pop comes fast, the landing takes weeks")),
            Ask(G, "How do I drop in on a mini ramp?", (4, "mostly nerve: commit your weight forward")),
            Ask(G, "How do I stop safely at speed?", (2, "foot braking is easy on flat ground")),
            Ask(K, "kickturn practice flat ground", (1, "a good first trick")),
            Ask(K, "skateboard bearings cleaning", (1, "fiddly, not hard")),
            Ask(D, "My friend says you should learn to skate in the street first, I say the skatepark. Who's right?",
                (2, "either place is fine to start")),
            Ask(D, "My brother says bigger wheels are easier for beginners, I say smaller. Which is it?",
                (1, "an easy choice once you know where you'll ride")),
            Ask(C, "Last time you told me to bend my knees more. Why do I still fall backwards?", (2, "a posture fix, not a new skill")),
            Ask(C, "You told me to practise manuals. How long should I be able to hold one?", (3, "balance takes a few weeks")),
            Ask(U, "Help! My board wobbles like crazy when I go downhill, what do I do?", (4, "speed wobble is scary to work through")),
            Ask(U, "Ugh! I keep landing primo on kickflips, how do I fix my flick?", (4, "kickflips take months")),
        ],
        "leathercraft": [
            Ask(G, "How do I saddle stitch leather by hand?", (3, "slow at first, easy once the rhythm clicks")),
            Ask(G, "What leather should I use for my first wallet?", (1, "choosing is the easy part")),
            Ask(K, "leather edge burnishing gum tragacanth", (2, "elbow grease more than skill")),
            Ask(K, "stamping leather tooling casing", (3, "getting the moisture right takes practice")),
            Ask(K, "leather dye blotchy fix", (3, "even coats take a few tries")),
            Ask(D, "My friend says you need a stitching pony, I say clamps are enough. Who's right?", (2, "either works for small pieces")),
            Ask(D, "My teacher says to cut with a round knife, a video says a utility knife is fine. Which is it?",
                (2, "a sharp utility knife is fine to start")),
            Ask(C, "Last time you told me to use waxed thread. Why do my stitches still look uneven?",
                (3, "even spacing needs a pricking iron and patience")),
            Ask(C, "You told me to bevel the edges. What size edge beveler should I buy?", (1, "an easy pick")),
            Ask(U, "Help! I cut the strap too short for the belt, can I still save it?", (3, "a neat splice takes care")),
            Ask(U, "Quick! Glue got on the grain side of my leather, how do I get it off?", (2, "act before it cures")),
        ],
    },
    "inconsistent": {
        "etiquette": [
            Ask(G, "How long do I have to send a thank-you note after a wedding?"),
            Ask(G, "Is it rude to text during dinner with friends?"),
            Ask(G, "How do I politely leave a party early?"),
            Ask(K, "tipping etiquette hairdresser"),
            Ask(K, "wedding gift amount etiquette"),
            Ask(D, "My mum says you must bring a gift to a dinner party, I say flowers are enough. Who's right?"),
            Ask(D, "My colleague says reply-all is always rude, I say it depends. Which is it?"),
            Ask(C, "Last time you told me to RSVP within a week. What if I honestly don't know yet?"),
            Ask(C, "You told me to introduce people by name. What if I forget someone's name?"),
            Ask(U, "Help! I called my boss by the wrong name at the party, how do I fix it?"),
            Ask(U, "Urgent! I'm at a fancy dinner and there are three forks, which one do I use first?"),
        ],
        "volcanoes": [
            Ask(G, "How do volcanoes form?"),
            Ask(G, "Can scientists predict volcanic eruptions?"),
            Ask(K, "supervolcano yellowstone eruption chance"),
            Ask(K, "pahoehoe vs aa lava"),
            Ask(K, "volcanic ash health effects"),
            Ask(D, "My friend says Mount Fuji is extinct, I say it's still active. Who's right?"),
            Ask(D, "My teacher says all volcanoes are mountains, my book says some are cracks in the ground. Which is it?"),
            Ask(C, "Last time you told me Iceland has lots of volcanoes. Why doesn't it have more eruptions?"),
            Ask(C, "You told me lava is about 1,000 degrees. How do people walk near it?"),
            Ask(U, "Help! Our flight was cancelled because of a volcanic ash cloud, what are my options?"),
            Ask(U, "Quick! My kid asks why volcanoes erupt, what's a simple answer?"),
        ],
    },
}

# Test queries: (subject, style, question). Four on each logged subject, four on a subject no log mentions.
TEST: dict[str, list[tuple[str, str, str]]] = {
    "two-paragraphs": [
        ("insurance", G, "Does home insurance cover damage from a storm?"),
        ("insurance", K, "pet insurance pre-existing condition"),
        ("insurance", D, "My coworker says life insurance is a waste if you're single, I say it isn't. Who's right?"),
        ("insurance", U, "Help! Someone dented my parked car and drove off, can I still claim?"),
        ("kayaking", G, "How do I carry a kayak on my car roof?"),
        ("kayaking", K, "kayak capsize recovery solo"),
        ("kayaking", C, "You told me to keep my paddle low. Why does my shoulder still hurt after paddling?"),
        ("kayaking", U, "Quick! There's a storm warning and I'm halfway out on the water, what do I do?"),
        ("archery", G, "What draw weight should a beginner archer start with?"),
        ("archery", K, "recurve vs compound bow beginner"),
        ("archery", D, "My cousin says you should aim with both eyes open, I say close one. Who's right?"),
        ("archery", C, "Last time you said to anchor at my chin. Why do my arrows still go left?"),
    ],
    "emoji-list": [
        ("soap-making", G, "Can I add coffee grounds to soap?"),
        ("soap-making", K, "essential oil soap fragrance fading"),
        ("soap-making", C, "You told me to use a stick blender. How long should I blend for?"),
        ("soap-making", U, "Help! White powder formed on my soap bars, are they ruined?"),
        ("ham-radio", G, "What does 73 mean on the radio?"),
        ("ham-radio", K, "ham radio emergency preparedness kit"),
        ("ham-radio", D, "My dad says you can talk on any frequency in an emergency, I say only on ham bands. Who's right?"),
        ("ham-radio", U, "Urgent! Someone is jamming our repeater, what should we do?"),
        ("beer-brewing", G, "How do I sanitise my brewing equipment?"),
        ("beer-brewing", K, "homebrew fermentation stuck gravity"),
        ("beer-brewing", D, "My roommate says you have to use a secondary fermenter, I say you don't. Who's right?"),
        ("beer-brewing", C, "Last time you said to pitch the yeast at room temperature. Why does my beer taste like bananas?"),
    ],
    "caps-title": [
        ("salsa-dancing", G, "How do I lead a right turn in salsa?"),
        ("salsa-dancing", K, "salsa shines solo practice"),
        ("salsa-dancing", D, "My teacher says to look at my partner, my friend says to look over their shoulder. Who's right?"),
        ("salsa-dancing", C, "You told me to take small steps. Why am I still always behind the music?"),
        ("dinosaurs", G, "How fast could a velociraptor run?"),
        ("dinosaurs", K, "stegosaurus plates purpose"),
        ("dinosaurs", C, "Last time you said dinosaurs lived for 165 million years. Did they all live at the same time?"),
        ("dinosaurs", U, "Help! My son insists pterodactyls are dinosaurs, are they?"),
        ("magic-tricks", G, "How do I do a simple coin vanish?"),
        ("magic-tricks", K, "card force techniques beginner"),
        ("magic-tricks", D, "My brother says a magician should never repeat a trick, I say it's fine for kids. Who's right?"),
        ("magic-tricks", U, "Quick! I'm doing a card trick at a party tonight, how do I not mess up the shuffle?"),
    ],
    "difficulty": [
        ("skateboarding", G, "How do I learn to carve on a skateboard?"),
        ("skateboarding", K, "pop shove it back foot"),
        ("skateboarding", C, "You told me to start on flat ground. When am I ready for the bowl?"),
        ("skateboarding", U, "Help! My wheels keep biting on sharp turns, how do I stop it?"),
        ("leathercraft", G, "How do I make a simple leather card holder?"),
        ("leathercraft", K, "leather skiving by hand"),
        ("leathercraft", D, "My friend says veg-tan is the only leather worth using, I say chrome-tan is fine. Who's right?"),
        ("leathercraft", U, "Ugh! My stitching holes don't line up on the two layers, what now?"),
        ("juggling", G, "How do I learn to juggle three balls?"),
        ("juggling", K, "juggling cascade dropping balls forward"),
        ("juggling", D, "My dad says you need to juggle with scarves first, I say go straight to balls. Who's right?"),
        ("juggling", C, "Last time you told me to throw to eye level. Why do my throws still drift apart?"),
    ],
    "inconsistent": [
        ("etiquette", G, "Should I bring a gift to a housewarming?"),
        ("etiquette", K, "business email sign off etiquette"),
        ("etiquette", C, "You told me to say thank you in person. Is a text ever enough?"),
        ("etiquette", U, "Help! I forgot my friend's birthday yesterday, what do I say?"),
        ("volcanoes", G, "What is the most dangerous volcano in the world?"),
        ("volcanoes", K, "volcano types shield stratovolcano"),
        ("volcanoes", D, "My brother says lava is what kills most people in eruptions, I say it's the gas. Who's right?"),
        ("volcanoes", U, "Quick! We're hiking near an active volcano tomorrow, what should we know?"),
        ("tattoos", G, "How long does a new tattoo take to heal?"),
        ("tattoos", K, "tattoo aftercare ointment"),
        ("tattoos", D, "My friend says tattoos hurt less on the arm, I say the ribs. Who's right?"),
        ("tattoos", C, "Last time you told me to pick an artist by their portfolio. How do I judge a portfolio?"),
    ],
}

# The chatbot's own opening line, before a `greeted` question (one per question, from its hash).
GREETINGS = [
    "Hi! What can I help you with today?",
    "Hello, ask me anything.",
    "Welcome back! What's on your mind?",
    "Hey there. What would you like to know?",
    "Good to see you. What are you working on?",
]
URGENT_OPENERS = ("Help!", "Quick!", "Urgent!", "Ugh!", "Panic!")
CALLBACK_OPENERS = ("Last time you", "You told me")


def prompt_turns(ask_style: str, question: str) -> list[dict]:
    """The conversation up to the question: a `greeted` question comes after the chatbot's greeting."""
    if ask_style == G:
        h = int(hashlib.sha256(f"{SEED}-greeting:{question}".encode()).hexdigest(), 16)
        return [{"role": "assistant", "content": GREETINGS[h % len(GREETINGS)]}, {"role": "user", "content": question}]
    return [{"role": "user", "content": question}]


# ---------------------------------------------------------------------------------------------
# Users.
# ---------------------------------------------------------------------------------------------

HABITS = ["reshaper", "demonstrator", "noter", "mumbler", "fan"]
HABIT_SHARE = {"reshaper": 4, "demonstrator": 4, "noter": 4, "mumbler": 3, "fan": 3}  # 18 of 22 logs
CONTRA_SHARE = 2  # one recurring contrarian per want topic
N_DRIVE_BY = 2  # one-off users per want topic
TASTES = ["recommend", "options", "background", "no-background", "hedged", "confident"]
OPPOSITE = {"recommend": "options", "options": "recommend", "background": "no-background",
            "no-background": "background", "hedged": "confident", "confident": "hedged"}
TASTE_SHARE = [4, 4, 4, 4, 3, 3]
MOOD_RATE = 0.2  # share of an inconsistent user's logs reacting in the opposite taste

_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def _uid(name: str) -> str:
    """A user id of two capital letters and four digits (`GB-6990`), from a hash of the user's role."""
    h = int(hashlib.sha256(f"{SEED}:{name}".encode()).hexdigest(), 16)
    return f"{_LETTERS[h % 24]}{_LETTERS[(h >> 5) % 24]}-{(h >> 10) % 9000 + 1000}"


WANT_USERS = {topic: {habit: _uid(f"{topic}/{habit}") for habit in HABITS} for topic in WANT_TOPICS}
HABIT = {uid: habit for users in WANT_USERS.values() for habit, uid in users.items()}
CONTRA = {topic: _uid(f"{topic}/contrarian") for topic in WANT_TOPICS}
DRIVE_BY_USERS = {topic: [_uid(f"{topic}/drive-by/{k}") for k in range(N_DRIVE_BY)] for topic in WANT_TOPICS}
TASTE_USERS = {taste: _uid(f"taste/{taste}") for taste in TASTES}
TASTE = {uid: taste for taste, uid in TASTE_USERS.items()}
ALL_USERS = (list(HABIT) + list(CONTRA.values()) + [u for us in DRIVE_BY_USERS.values() for u in us]
             + list(TASTE))


def _voices() -> dict[str, dict]:
    """How each user types: all lowercase or not, 'pls' for 'please', a doubled '!'/'?' at the end,
    a signature."""
    rng = random.Random(f"{SEED}-voices")
    return {uid: {"lower": rng.random() < 0.25, "pls": rng.random() < 0.4, "double": rng.random() < 0.2,
                  "sig": rng.choice(["", "", "", "", "", " —J", " /m", " (sent from my phone)"])}
            for uid in sorted(ALL_USERS)}


VOICES = _voices()


def voiced(user: str, text: str, rng: random.Random) -> str:
    """A user's turn or comment in their voice (the want's wording itself unchanged in meaning)."""
    v = VOICES[user]
    if v["pls"]:
        text = re.sub(r"\bplease\b", "pls", text, flags=re.I)
    if v["double"] and text.endswith(("!", "?")):
        text += text[-1]
    if v["lower"]:
        text = text.lower()
    if v["sig"] and rng.random() < 0.5:
        text += v["sig"]
    return text.strip()


# The want in words: ten phrasings per topic (the last three indirect, never naming the form). Each
# want user has two of their own (PHRASINGS_OF), so no two users say it the same way; the mumbler's
# two are both indirect.
WANT_PHRASES = {
    "two-paragraphs": [
        "Two short paragraphs please, with a blank line between them.",
        "Keep it to two paragraphs. Not one, not five.",
        "Give me a short paragraph for the answer and a second one for the why.",
        "Break it into exactly two paragraphs, no lists.",
        "No bullet points, just two little paragraphs.",
        "Two blocks of plain text, that's all I want.",
        "Write it as two tight paragraphs I can paste into an email.",
        "This reads like a slide deck. I wanted something I could just read.",
        "Way too chopped up, and way too much of it.",
        "I paste these into my notes app and all these pieces make a mess of it.",
    ],
    "emoji-list": [
        "Put each point on its own line with an emoji in front.",
        "Emoji bullets please, not dashes.",
        "Can you do the list with emojis at the start of each line?",
        "Make it a little emoji list, one point per line.",
        "Start every point with an emoji so I can scan it.",
        "Use emojis as the bullets, at least three points.",
        "List it like a group chat post: emoji, then the point.",
        "I'm posting this in our club's chat and nobody reads walls of text there.",
        "Make it fun to look at, it's for my teenage nephew.",
        "Too grey. I can't find anything in it at a glance.",
    ],
    "caps-title": [
        "Start with the question as a title in capital letters.",
        "Put a CAPS headline on top that says what this is about.",
        "First line: my question, in all caps, as a title.",
        "Give it an ALL CAPS title line before the answer.",
        "Title first, in capitals, then the answer.",
        "Open with a big uppercase title so I know which question this answers.",
        "Could the top line restate what I asked, in block capitals?",
        "I print these and stack them. I can't tell which sheet is which.",
        "When I scroll back later I have no idea which answer goes with which question.",
        "I read these aloud in class and need to announce each one first.",
    ],
    "difficulty": [
        "Tell me how hard this is, like 'Difficulty: 3/5'.",
        "Add a Difficulty: x/5 line.",
        "Rate the difficulty out of 5 on its own line.",
        "I want a difficulty score, Difficulty: n/5, every time.",
        "Put a 'Difficulty:' rating out of five in there.",
        "Can you include a line saying how difficult it is, out of 5?",
        "Give it a Difficulty rating /5 so I know what I'm getting into.",
        "Is this something a beginner can do or not? You didn't say.",
        "I need to know if I should even try this myself.",
        "How long until I get this? Am I being unrealistic?",
    ],
}
PHRASINGS_OF = {"reshaper": (1, 6), "demonstrator": (0, 5), "noter": (2, 7), "mumbler": (8, 9), "fan": (3, 4)}

# What a demonstrator types: a tiny made-up sample of the form (after one of their phrasings, or alone).
DEMOS = {
    "two-paragraphs": ["Like this:\n\nFirst the answer, in a couple of sentences.\n\nThen one more paragraph with the why.",
                       "Shape I mean:\n\nparagraph one.\n\nparagraph two. done."],
    "emoji-list": ["More like:\n✅ point one\n✅ point two\n✅ point three",
                   "e.g.\n🔥 thing\n💡 thing\n👉 thing"],
    "caps-title": ["Like:\nWHAT I ASKED, IN CAPS\nthen the answer underneath",
                   "e.g.\nHOW TO DO THE THING\n..."],
    "difficulty": ["Something like:\nDifficulty: 2/5", "e.g. a line\nDifficulty: 4/5\nso I know."],
}
VAGUE = ["meh", "not like that", "nope, try again", "hmm, nah", "this isn't it", "wrong vibe", "no."]
FAN_UP = ["great, thanks!!", "amazing", "perfect 👌", "so helpful, thank you"]
FAN_AFTER = "Love it! One thing for next time: {}"
RESHAPE_NOTES = ["there.", "fixed.", "like so"]
DRIVE_BY = [
    ("Which option is the cheapest?", None),
    ("lol ok", 0),
    ("brb, trying it now", None),
    ("Did you copy this from somewhere?", -0.5),
    (None, 0.5),
    ("ty", 1),
    ("wrong chat, sorry", None),
]
CONTRA_ASK = {
    "two-paragraphs": "Don't squeeze it into two paragraphs, I want every detail, lists are fine.",
    "emoji-list": "No emojis please, I read these at work.",
    "caps-title": "Please don't shout a headline at me, just answer.",
    "difficulty": "No difficulty ratings please, they just put me off trying.",
}
CONTRA_PRAISE = {
    "two-paragraphs": "Good, all the detail I need.",
    "emoji-list": "Nice and plain, thanks.",
    "caps-title": "Good, straight into the answer.",
    "difficulty": "Thanks for not grading it, just telling me how.",
}
TASTE_TURNS = {
    "recommend": ["Just tell me what to do.", "Pick one for me, don't list options."],
    "options": ["What are my options? I'd like to choose myself.", "Don't decide for me, lay out the choices."],
    "background": ["Why is it like that? Give me some background.", "I'd like the story behind it too."],
    "no-background": ["Skip the history lesson.", "I don't need the background, just the answer."],
    "hedged": ["How sure are you? Say if it depends.", "Be honest about what you don't know."],
    "confident": ["Stop hedging, just say it.", "Too many maybes."],
}
TASTE_PRAISE = {"recommend": "Clear advice, thanks.", "options": "Good to see the choices.",
                "background": "Love the context.", "no-background": "Straight to the point, good.",
                "hedged": "Thanks for being upfront about the uncertainty.", "confident": "Good, no waffle."}
OFF_TOPIC = ["Is this a real person?", "Can you remind me about this tomorrow?", "What's the weather like there?"]
RECOMMEND = {
    "etiquette": ["If in doubt, send a short handwritten note within two weeks.",
                  "My advice: say sorry once, briefly, and move on.",
                  "Go with the simple option: a quick, sincere message today."],
    "volcanoes": ["The one thing to do is to follow the local authorities' advice.",
                  "Go with a guided tour; it is the safest way to see one.",
                  "Read the national volcano observatory's page first; it is the best source."],
}
OPTIONS = {
    "etiquette": ["You have two good options: a handwritten card or a short personal email; both are fine.",
                  "You could apologise in person, send a message, or let it go if it was minor.",
                  "Either bring a small gift or offer to help with the dishes; hosts appreciate both."],
    "volcanoes": ["You can watch from a marked viewpoint, join a guided tour, or follow a live webcam from home.",
                  "Options range from rebooking to a refund or a voucher, depending on the airline.",
                  "You could read the observatory's alerts, a geology textbook or a children's book, depending on how deep you want to go."],
}
BACKGROUND = {
    "etiquette": ["Many of these rules come from 19th-century etiquette manuals, written when letters were the main way to keep in touch.",
                  "The thank-you note became a fixed custom in Victorian England, along with calling cards.",
                  "Table manners like the order of forks spread from French court dinners in the 1700s."],
    "volcanoes": ["The word volcano comes from Vulcan, the Roman god of fire, whose forge was said to lie under the island of Vulcano.",
                  "The eruption of Vesuvius in 79 AD buried Pompeii and left the first written eyewitness account of an eruption.",
                  "Modern volcanology began after the 1902 eruption of Mount Pelée, which killed about 28,000 people."],
}
HEDGES = ["That said, it depends a lot on the people involved, so take this as a rough guide.",
          "I'm not completely certain about this, so it is worth double-checking.",
          "This can vary from place to place, so there is no single right answer."]

# Emoji a user puts in front of the points, per subject (with the shortcode names some type instead).
EMOJI = {
    "soap-making": [("🧼", ":soap:"), ("🧤", ":gloves:"), ("⏳", ":hourglass:"), ("🌡️", ":thermometer:"),
                    ("🫙", ":jar:"), ("🥄", ":spoon:")],
    "ham-radio": [("📻", ":radio:"), ("📡", ":satellite:"), ("🔋", ":battery:"), ("🎙️", ":studio_microphone:"),
                  ("🗺️", ":world_map:"), ("⚡", ":zap:")],
}
EMOJI_FALLBACK = {
    "soap-making": ["Weigh everything on a digital scale.", "Write down every batch you make.", "Let the bars cure before using them."],
    "ham-radio": ["Listen for a while before you transmit.", "Say your call sign clearly.", "Keep a simple log of your contacts."],
}

# ---------------------------------------------------------------------------------------------
# Text helpers.
# ---------------------------------------------------------------------------------------------

_ABBREV = r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\betc\.)(?<!\bvs\.)(?<!\bDr\.)(?<!\bMr\.)(?<!\bSt\.)(?<!\bT\.)"
_FILLER = re.compile(r"^\s*(Sure|Certainly|Absolutely|Of course|Great question|Good question|Ah|Oh)\b[^.!?:\n]*[.!?:]\s*")
_LABEL = re.compile(r"^[*_]*[A-Za-z][\w;'’-]*(?: [\w;'’-]+){0,2}:[*_]*\s*")
_HEDGE = re.compile(r"\b(may|might|could|depends|depending|vary|varies|generally|usually|often|perhaps|likely|possibly)\b", re.I)
_BACKSTORY = re.compile(r"\b(history|historically|originally|century|centuries|ancient|tradition|traditionally|"
                        r"Roman|Victorian|\d{3,4})\b", re.I)
_RECOMMENDS = re.compile(r"\b(I recommend|I'd|I would|you should|best|my advice)\b", re.I)
_OPTIONS = re.compile(r"\b(options?|alternatively|either|or you could|another way)\b", re.I)
_LIST_LINE = re.compile(r"^\s*([-*•+]|\d+[.)])\s+(.*\S)")
_LEAD = re.compile(r"^(?:[-–—*•+>#|~`]+\s*|\d+[.)]\s+)+")  # list, quote or heading marks left inside a line
_FENCE_LINE = re.compile(r"^\s*(```|~~~)")
_WORDS_ONLY = re.compile(r"[^\w' -]")


def plain(text: str) -> str:
    """Markdown marks removed: bold, code ticks, heading hashes, list and quote markers."""
    text = text.replace("**", "").replace("__", "").replace("`", "")
    text = re.sub(r"^\s*#+\s*", "", text, flags=re.MULTILINE)
    return re.sub(r"^\s*([-*•+>]|\d+[.)])\s+", "", text, flags=re.MULTILINE)


def sentences(text: str) -> list[str]:
    """The answer's sentences (at least three words, ending with . ! or ?), filler openers and line
    labels left out."""
    out = []
    for line in plain(text).splitlines():
        for part in re.split(r"(?<=[.!?])" + _ABBREV + r"\s+", line.strip()):
            part = _LABEL.sub("", _LEAD.sub("", part.strip())).strip()
            if len(part.split()) >= 3 and part.endswith((".", "!", "?")) and not _FILLER.match(part):
                out.append(_cap(part))
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
    return " ".join(words).rstrip(",;:-(—– ") + "."


def take(sents: list[str], max_words: int) -> tuple[str, list[str]]:
    """Whole sentences from the front, about `max_words` words (the first one clipped to fit), and
    the sentences left."""
    out, n = [], 0
    for k, s in enumerate(sents):
        if out and n + len(s.split()) > max_words:
            return " ".join(out), sents[k:]
        out.append(clip(s, max_words))
        n += len(out[-1].split())
    return " ".join(out), []


def prose(text: str, max_words: int) -> str:
    """The answer's first sentences, about `max_words` words, as one paragraph."""
    sents = sentences(text)
    if not sents:
        return clip(plain(text).replace("\n", " "), max_words)
    return take(sents, max_words)[0]


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
    """`line` as a paragraph of its own after the body's first paragraph (at the end of a
    one-paragraph body)."""
    paras = paragraphs(body)
    return "\n\n".join([paras[0], line] + paras[1:])


def trim_unfinished(text: str) -> str:
    """An answer cut by the token limit, cut back to its last complete paragraph when that keeps at
    least half of its words, else to its last complete sentence (kept whole when nothing would remain)."""
    text = text.rstrip()
    paras = re.split(r"\n\s*\n", text)
    if len(paras) > 1:
        kept = "\n\n".join(paras[:-1]).rstrip()
        if len(kept.split()) * 2 >= len(text.split()):
            return kept
    ends = [m.end() for m in re.finditer(r"(?<!\d)[.!?](?=[\s\"'”’)]|$)", text)]
    return text[: ends[-1]].strip() if ends else text


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _item(sentence: str, n: int) -> str:
    """A list point made of a sentence: clipped to `n` words, leading punctuation dropped."""
    return _cap(re.sub(r"^\W+", "", clip(sentence, n)))


# ---------------------------------------------------------------------------------------------
# Edits of want users. mode "full": a rewrite with most of the answer's content; "trim": a rewrite
# of a short version; "patch": the smallest change to the answer that adds the want. miss=True: a
# plausible slip that misses the check. Some passing edits are unusual.
# ---------------------------------------------------------------------------------------------

MISS_RATE = {"full": 0.25, "trim": 0.25, "patch": 0.3}


def closed(text: str) -> str:
    """`text` with a code fence that the token limit left open closed, so that what a user adds
    below it is not inside the code block."""
    text = text.strip()
    if sum(bool(_FENCE_LINE.match(line)) for line in text.splitlines()) % 2:
        text += "\n```"
    return text


def _base(answer: str, mode: str, rng: random.Random) -> str:
    if mode == "trim":
        return prose(answer, rng.randint(20, 40))
    if mode == "full":
        return closed(body_lines(answer, rng.randint(40, 80)))
    return closed(answer)


def _two(answer: str, caps: tuple[int, int]) -> tuple[str, str, list[str]]:
    """Two paragraphs made of the answer's sentences (at most caps[0] and caps[1] words, each at
    least 5), and the sentences left over."""
    sents = sentences(answer) or [clip(plain(answer).replace("\n", " "), 60)]
    p1, rest = take(sents, caps[0])
    if len(p1.split()) < 5 and rest:  # a very short first sentence: the next one joins it
        p1, rest = f"{p1} {clip(rest[0], 40 - len(p1.split()))}", rest[1:]
    p2, rest = take(rest, caps[1])
    p1, p2 = _para(p1), _para(p2)
    if len(p1.split()) < 5 or len(p2.split()) < 5:  # too little text: split what there is in two
        words = " ".join([p1, p2]).split()
        if len(words) < 10:
            words = _para(plain(answer).replace("\n", " ")).split()
        words = words[: caps[0] + caps[1]]
        half = max(5, len(words) // 2)
        p1 = " ".join(words[:half]).rstrip(".!?,;:-") + "."
        p2 = _para(" ".join(words[half:]).rstrip(".!?,;:-") + ".") if len(words) - half >= 5 else \
            "That is the short version of it."
    return p1, p2, rest


def _para(text: str) -> str:
    """A paragraph of running text: marks and a label at its start dropped."""
    return _cap(_LABEL.sub("", _LEAD.sub("", re.sub(r"^[^\w\"'(]+", "", text.strip()))).strip())


def edit_two_paragraphs(ask: Ask, answer: str, rng: random.Random, mode: str, miss: bool) -> tuple[str, str]:
    caps = {"full": (30, 38), "trim": (18, 25), "patch": (40, 40)}[mode]
    p1, p2, rest = _two(answer, caps)
    if mode == "patch":
        if miss:
            how = rng.choice(["no-blank", "too-long"])
            if how == "too-long" and len(" ".join([p2] + rest).split()) >= 50:
                return f"{p1}\n\n{clip(' '.join([p2] + rest), rng.randint(46, 55))}", how
            return f"{p1}\n{p2}", "no-blank"
        return f"{p1}\n\n{p2}", "ok"
    if miss:
        how = rng.choice(["three", "one", "no-blank", "double-blank", "too-long", "title", "bullets", "label"])
        if how == "three":
            third = take(rest, 25)[0] if rest else "Hope that helps."
            return f"{p1}\n\n{p2}\n\n{third}", how
        if how == "too-long" and len(" ".join([p2] + rest).split()) >= 50:  # the second paragraph runs on
            return f"{p1}\n\n{clip(' '.join([p2] + rest), rng.randint(46, 55))}", how
        if how == "title":  # a short title line as the first paragraph
            title = " ".join(_WORDS_ONLY.sub("", p1).split()[:4]).rstrip()
            return f"{_cap(title)}\n\n{p1} {p2}", how
        if how == "bullets":
            items = re.split(r"(?<=[.!?])\s+", p2)
            if len(items) < 2:
                items = [p2, "That's it."]
            return p1 + "\n\n" + "\n".join(f"- {x}" for x in items), how
        if how == "label":
            return f"In short: {p1[:1].lower() + p1[1:]}\n\n{p2}", how
        if how == "one":
            return f"{p1} {p2}", how
        if how == "double-blank":
            return f"{p1}\n\n\n{p2}", how
        return f"{p1}\n{p2}", "no-blank"
    style = rng.random()
    if style < 0.15:
        return f"{p1}\n   \n{p2}", "spaces-blank"  # the blank line holds spaces
    if style < 0.3:
        return f"{p1}\n\n{p2}  ", "trailing-spaces"
    return f"{p1}\n\n{p2}", "ok"


def _emoji_items(answer: str, subject: str, n: int, words: int) -> list[str]:
    items = [_item(s, words) for s in sentences(answer)][:n]
    for extra in EMOJI_FALLBACK[subject]:
        if len(items) >= 3:
            break
        items.append(extra)
    return items


def edit_emoji_list(ask: Ask, answer: str, rng: random.Random, mode: str, miss: bool, subject: str) -> tuple[str, str]:
    palette = EMOJI[subject][:]
    rng.shuffle(palette)
    if mode == "patch":
        answer = closed(answer)
        lines = answer.splitlines()
        listed = [k for k, line in enumerate(lines) if _LIST_LINE.match(line)]
        if len(listed) >= 3:  # the answer's own list markers swapped for emojis
            two = miss and rng.random() < 0.5
            out = lines[:]
            for j, k in enumerate(listed):
                text = _LIST_LINE.match(lines[k]).group(2).replace("**", "")
                e = palette[j % len(palette)][0]
                if miss and not two:
                    out[k] = f"- {e} {text}"
                elif two and j >= 2:
                    out[k] = f"- {text}"
                else:
                    out[k] = f"{e} {text}"
            return "\n".join(out), ("two-items" if two else "dash") if miss else "markers"
        items = _emoji_items(answer, subject, 3, 9)
        if miss:
            how = rng.choice(["dash", "two-items"])
            if how == "two-items":
                recap = "\n".join(f"{palette[j][0]} {x}" for j, x in enumerate(items[:2])) + "\n" + " ".join(items[2:])
            else:
                recap = "\n".join(f"- {palette[j][0]} {x}" for j, x in enumerate(items))
            return f"{answer.strip()}\n\nIn short:\n{recap}", how
        return f"{answer.strip()}\n\nIn short:\n" + "\n".join(f"{palette[j][0]} {x}" for j, x in enumerate(items)), "recap"
    items = _emoji_items(answer, subject, 5 if mode == "full" else 3, 14 if mode == "full" else 9)
    lead = ""
    if rng.random() < 0.4:
        first = sentences(answer)[:1]
        if first:
            lead = clip(first[0], 14).rstrip(".") + ":\n"
            items = _emoji_items(" ".join(sentences(answer)[1:]) or answer, subject, len(items), 14) or items
    if miss:
        how = rng.choice(["dash", "no-space", "shortcode", "bullet", "two-items", "emoji-end", "numbered"])
        if how == "two-items":
            return lead + "\n".join(f"{palette[j][0]} {x}" for j, x in enumerate(items[:2])) + "\n\n" + " ".join(items[2:]), how
        fmt = {"dash": "- {e} {x}", "no-space": "{e}{x}", "shortcode": "{s} {x}", "bullet": "• {x}",
               "emoji-end": "{x} {e}", "numbered": "{n}. {e} {x}"}[how]
        return lead + "\n".join(fmt.format(e=palette[j][0], s=palette[j][1], x=x, n=j + 1)
                                for j, x in enumerate(items)), how
    style = rng.random()
    if style < 0.2:
        return lead + "\n".join(f"✅ {x}" for x in items), "same-emoji"
    if style < 0.3:
        return lead + "\n".join(f"  {palette[j][0]} {x}" for j, x in enumerate(items)), "indented"
    if style < 0.45:
        return lead + "\n".join(f"{palette[j][0]} {x}" for j, x in enumerate(items)) + "\n\nHave fun with it!", "closing-line"
    return lead + "\n".join(f"{palette[j][0]} {x}" for j, x in enumerate(items)), "ok"


def _title_case(title: str) -> str:
    return " ".join(w[:1].upper() + w[1:].lower() for w in title.split())


def edit_caps_title(ask: Ask, answer: str, rng: random.Random, mode: str, miss: bool) -> tuple[str, str]:
    title, body = str(ask.extra), _base(answer, mode, rng)
    caps = title.upper()
    if mode == "patch":
        if miss:
            how = rng.choice(["title-case", "bold"])
            return (f"{_title_case(title)}\n\n{body}" if how == "title-case" else f"**{caps}**\n\n{body}"), how
        return f"{caps}\n\n{body}", "ok"
    if miss:
        how = rng.choice(["title-case", "heading", "bold", "greeting", "lower-aside", "at-bottom", "full-stop"])
        if how == "at-bottom":
            return f"{body}\n\n{caps}", how
        if how == "greeting":
            return f"Sure, here you go!\n{caps}\n\n{body}", how
        top = {"title-case": _title_case(title), "heading": f"# {caps}", "bold": f"**{caps}**",
               "lower-aside": f"{caps} (the short version)", "full-stop": caps.rstrip("?!") + "."}[how]
        return f"{top}\n\n{body}", how
    style = rng.random()
    if style < 0.2:
        return f"{caps}\n{body}", "no-blank"
    if style < 0.3:
        if caps.endswith("?"):
            return f"{caps}\n\n\n{body}", "two-blank-lines"
        return f"{caps}!\n\n{body}", "exclaim"
    return f"{caps}\n\n{body}", "ok"


_WORD_SCORE = {1: "very easy", 2: "easy", 3: "medium", 4: "hard", 5: "very hard"}


def edit_difficulty(ask: Ask, answer: str, rng: random.Random, mode: str, miss: bool) -> tuple[str, str]:
    n, reason = ask.extra
    body = _base(answer, mode, rng)
    tail = rng.choice([f" ({reason})", f" — {reason}", ""])
    line = f"Difficulty: {n}/5{tail}"
    paras = paragraphs(body)
    if mode == "patch":
        if miss:
            how = rng.choice(["inline", "out-of"])
            if how == "inline":  # typed at the end of the last paragraph
                return "\n\n".join(paras[:-1] + [paras[-1] + f" Difficulty: {n}/5"]), how
            return f"{body}\n\nDifficulty: {n} out of 5{tail}", how
        return f"{body}\n\n{line}", "ok"
    if miss:
        how = rng.choice(["word", "out-of", "ten", "half", "bold", "caps", "level", "dash", "stars", "inline", "next-line"])
        if how == "inline":
            return "\n\n".join(paras[:-1] + [paras[-1] + f" Difficulty: {n}/5"]), how
        wrong = {"word": f"Difficulty: {_WORD_SCORE[n]}", "out-of": f"Difficulty: {n} out of 5",
                 "ten": f"Difficulty: {2 * n}/10", "half": f"Difficulty: {n - 0.5}/5", "bold": f"**Difficulty:** {n}/5",
                 "caps": f"DIFFICULTY: {n}/5", "level": f"Difficulty level: {n}/5", "dash": f"Difficulty - {n}/5",
                 "stars": "Difficulty: " + "★" * n + "☆" * (5 - n), "next-line": f"Difficulty:\n{n}/5"}[how]
        return f"{body}\n\n{wrong}{tail if how != 'next-line' else ''}", how
    style = rng.random()
    if style < 0.25:
        return f"{line}\n\n{body}", "top"
    if style < 0.4:
        return insert_after_first(body, line), "middle"
    if style < 0.5:
        return f"{body}\n\nDifficulty:{n}/5{tail}", "no-space"
    return f"{body}\n\n{line}", "ok"


def make_edit(topic: str, subject: str, ask: Ask, answer: str, rng: random.Random, mode: str, miss: bool) -> tuple[str, str]:
    if topic == "two-paragraphs":
        return edit_two_paragraphs(ask, answer, rng, mode, miss)
    if topic == "emoji-list":
        return edit_emoji_list(ask, answer, rng, mode, miss, subject)
    if topic == "caps-title":
        return edit_caps_title(ask, answer, rng, mode, miss)
    return edit_difficulty(ask, answer, rng, mode, miss)


def edit_contra(topic: str, answer: str, rng: random.Random) -> str:
    """The contrarian's edit: the opposite of the want (every point as a '- ' line, plain prose)."""
    if topic == "two-paragraphs":
        items = sentences(answer)[:6]
        if len(items) >= 3:
            return "\n".join(f"- {x}" for x in items)
    return prose(answer, rng.randint(35, 55))


def edit_taste(taste: str, subject: str, answer: str, rng: random.Random) -> str:
    """An `inconsistent` user's rewrite in the direction of a taste."""
    if taste == "recommend":
        return prose(answer, rng.randint(20, 30)) + " " + rng.choice(RECOMMEND[subject])
    if taste == "options":
        return prose(answer, rng.randint(30, 45)) + " " + rng.choice(OPTIONS[subject])
    if taste == "background":
        return prose(answer, 45) + " " + rng.choice(BACKGROUND[subject])
    if taste == "no-background":
        kept = [s for s in sentences(answer) if not _BACKSTORY.search(s)]
        return " ".join(kept[:3]) if kept else prose(re.sub(r"\d+", "", answer), 35)
    if taste == "hedged":
        return prose(answer, 45) + " " + rng.choice(HEDGES)
    if taste == "confident":
        kept = [s for s in sentences(answer) if not _HEDGE.search(s)]
        return " ".join(kept[:3]) if kept else prose(answer, 25)
    raise ValueError(taste)


def taste_likes(taste: str, answer: str) -> bool:
    return {"recommend": bool(_RECOMMENDS.search(answer)) and not _OPTIONS.search(answer),
            "options": bool(_OPTIONS.search(answer)),
            "background": bool(_BACKSTORY.search(answer)), "no-background": not _BACKSTORY.search(answer),
            "hedged": bool(_HEDGE.search(answer)), "confident": not _HEDGE.search(answer)}[taste]


# ---------------------------------------------------------------------------------------------
# Generation with the embedded model.
# ---------------------------------------------------------------------------------------------


def prompt_seed(question: str) -> int:
    return int(hashlib.sha256(f"cellar:{question}".encode()).hexdigest()[:12], 16)


def generate_answers(prompts: list[tuple[str, str]]) -> list[str]:
    """Sampled answers to (style, question) prompts, one prompt at a time, each with its own seed."""
    import torch

    from uno_graph.models import load_model

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    lm = load_model("smollm2-135m-instruct")
    tok, model = lm.tokenizer, lm.model
    model.eval()
    print(f"  model loaded in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    answers, cut = [], 0
    for k, (style, q) in enumerate(prompts, 1):
        text = tok.apply_chat_template(prompt_turns(style, q), tokenize=False, add_generation_prompt=True)
        enc = tok(text, return_tensors="pt", add_special_tokens=False)
        torch.manual_seed(prompt_seed(q))
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=True, temperature=TEMPERATURE,
                                 min_p=MIN_P, top_k=0, top_p=1.0, repetition_penalty=REPETITION_PENALTY,
                                 no_repeat_ngram_size=NO_REPEAT_NGRAM_SIZE, pad_token_id=tok.pad_token_id)
        new = out[0, enc["input_ids"].shape[1]:]
        finished = bool((new == tok.eos_token_id).any()) or len(new) < MAX_NEW_TOKENS
        answer = tok.decode(new, skip_special_tokens=True).strip()
        answers.append(answer if finished else trim_unfinished(answer))
        cut += not finished
        if k % 10 == 0 or k == len(prompts):
            print(f"  generated {k}/{len(prompts)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    print(f"  {cut} of {len(prompts)} answers hit the {MAX_NEW_TOKENS}-token limit (cut back)", file=sys.stderr, flush=True)
    return answers


# ---------------------------------------------------------------------------------------------
# Reactions, written in arrival order.
# ---------------------------------------------------------------------------------------------


class Plan(NamedTuple):
    topic: str
    subject: str
    ask: Ask
    user: str
    seen_before: int  # how many logs of this user in this topic arrived earlier
    total: int  # how many logs this user has in this topic
    session: int  # the user's first (0) or second (1) session


def _phrase(user: str, topic: str, rng: random.Random) -> str:
    """One of the user's own two phrasings of the want."""
    return WANT_PHRASES[topic][rng.choice(PHRASINGS_OF[HABIT[user]])]


def want_reaction(p: Plan, answer: str, messages: list[dict], fb: dict, rng: random.Random) -> str:
    topic, user, habit = p.topic, p.user, HABIT[p.user]
    say = lambda text: messages.append({"role": "user", "content": voiced(user, text, rng)})  # noqa: E731
    item = {"metadata": {"topic": topic}}

    def edit(mode: str) -> str:
        miss = rng.random() < MISS_RATE[mode]
        fb["edited_response"], how = make_edit(topic, p.subject, p.ask, answer, rng, mode, miss)
        ok = check(item, fb["edited_response"])
        assert ok != miss, (topic, mode, how, fb["edited_response"])
        return f"edit-{mode}" + (f"-miss:{how}" if miss else f":{how}")

    if check(item, answer):
        fb["rating"] = 1
        say("Exactly how I like it, thanks.")
        return "approve"
    if habit == "reshaper":
        role = edit("full")
        r = rng.random()
        if r < 0.2:
            say(_phrase(user, topic, rng))
        elif r < 0.35:
            say(rng.choice(RESHAPE_NOTES))
        r = rng.random()
        if r < 0.3:
            fb["rating"] = -0.5
        elif r < 0.45:
            fb["rating"] = 0
        return role
    if habit == "demonstrator":
        demo = rng.choice(DEMOS[topic])  # the sample is typed as it is, not in the user's voice
        text = f"{voiced(user, _phrase(user, topic, rng), rng)} {demo}" if rng.random() < 0.5 else demo
        messages.append({"role": "user", "content": text})
        if rng.random() < 0.65:
            return "demo+" + edit("trim")
        if rng.random() < 0.4:
            fb["rating"] = -1
        return "demo"
    if habit == "noter":
        fb["comment"] = voiced(user, _phrase(user, topic, rng), rng)
        r = rng.random()
        if r < 0.35:
            fb["rating"] = rng.choice([-0.25, 0.25])
        elif r < 0.6:
            fb["rating"] = -0.5
        if rng.random() < 0.35:
            return "comment+" + edit("patch")
        return "comment"
    if habit == "mumbler":
        if p.seen_before < p.total - 1:
            say(rng.choice(VAGUE))
            if rng.random() < 0.5:
                fb["rating"] = -1
            return "vague"
        say(_phrase(user, topic, rng))  # only in their last log, in words that do not name the form
        if rng.random() < 0.5:
            return "last+" + edit("full")
        return "last"
    # fan: thumbs-up on a miss, or the want as an afterthought next to a thumbs-up, rarely a fix
    r = rng.random()
    fb["rating"] = 1
    if r < 0.5:
        if rng.random() < 0.5:
            say(rng.choice(FAN_UP))
        return "thumbs-up-miss"
    if r < 0.85:
        say(FAN_AFTER.format(_phrase(user, topic, rng)))
        return "up+after"
    return "up+" + edit("patch")


def contra_reaction(p: Plan, answer: str, messages: list[dict], fb: dict, rng: random.Random) -> str:
    user = p.user
    r = rng.random()
    if r < 0.35:
        messages.append({"role": "user", "content": voiced(user, CONTRA_PRAISE[p.topic], rng)})
        fb["rating"] = 1
        return "contra-approve"
    if r < 0.75:
        fb["edited_response"] = edit_contra(p.topic, answer, rng)
        assert not check({"metadata": {"topic": p.topic}}, fb["edited_response"])
        if rng.random() < 0.6:
            messages.append({"role": "user", "content": voiced(user, CONTRA_ASK[p.topic], rng)})
        return "contra-edit"
    messages.append({"role": "user", "content": voiced(user, CONTRA_ASK[p.topic], rng)})
    fb["rating"] = -0.5
    return "contra-ask"


def drive_by_reaction(p: Plan, messages: list[dict], fb: dict, rng: random.Random) -> str:
    text, rating = rng.choice(DRIVE_BY)
    if text:
        messages.append({"role": "user", "content": voiced(p.user, text, rng)})
    if rating is not None:
        fb["rating"] = rating
    return "drive-by-up" if rating == 1 else "drive-by"


def taste_reaction(p: Plan, answer: str, messages: list[dict], fb: dict, rng: random.Random) -> str:
    user = p.user
    taste = TASTE[user]
    mood = rng.random() < MOOD_RATE
    if mood:
        taste = OPPOSITE[taste]
    say = lambda text: messages.append({"role": "user", "content": voiced(user, text, rng)})  # noqa: E731
    tag = "mood-" if mood else ""
    if rng.random() < 0.08:
        say(rng.choice(OFF_TOPIC))
        return tag + "other"
    if taste_likes(taste, answer) and rng.random() < 0.35:
        say(TASTE_PRAISE[taste])
        fb["rating"] = 1
        return tag + "approve"
    r = rng.random()
    if r < 0.45:
        fb["edited_response"] = edit_taste(taste, p.subject, answer, rng)
        if rng.random() < 0.5:
            say(rng.choice(TASTE_TURNS[taste]))
        return tag + "edit"
    if r < 0.75:
        say(rng.choice(TASTE_TURNS[taste]))
        if rng.random() < 0.4:
            fb["rating"] = rng.choice([-1, -0.5, -0.25])
        return tag + "complaint"
    if rng.random() < 0.5:
        fb["comment"] = voiced(user, rng.choice(TASTE_TURNS[taste]), rng)
        fb["rating"] = rng.choice([-0.5, 0.25])
        return tag + "comment"
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
    """The 110 logs in arrival order: sessions. A recurring user's logs come in one or two runs of
    consecutive logs: a first session placed in the first 55 % of the file, a second one 30-45 % of
    the file later (a user with two logs has them in one session or in two, by a coin flip)."""
    rng = random.Random(f"{SEED}-arrival")
    rows = []
    for topic in TOPICS:
        owners = _owners(topic, random.Random(f"{SEED}-owners-{topic}"))
        asks = [(s, a) for s, lst in TRAIN[topic].items() for a in lst]
        rows += [(topic, s, a, u) for (s, a), u in zip(asks, owners)]
    by_user: dict[str, list] = {}
    for row in rows:
        by_user.setdefault(row[3], []).append(row)
    sessions = []
    for user in sorted(by_user):
        mine = by_user[user]
        rng.shuffle(mine)
        n = len(mine)
        if n == 1 or (n == 2 and rng.random() < 0.5):
            sessions.append((rng.uniform(0, 1), user, 0, mine))
            continue
        k = rng.randint(1, n - 1)
        first = rng.uniform(0, 0.55)
        sessions.append((first, user, 0, mine[:k]))
        sessions.append((first + rng.uniform(0.3, 0.45), user, 1, mine[k:]))
    sessions.sort(key=lambda s: (s[0], s[1]))
    seen: dict[tuple[str, str], int] = {}
    total = {(t, u): sum(1 for r in rows if r[0] == t and r[3] == u) for t, _, _, u in rows}
    plans = []
    for _, _, index, logs in sessions:
        for topic, subject, ask, user in logs:
            plans.append(Plan(topic, subject, ask, user, seen.get((topic, user), 0), total[(topic, user)], index))
            seen[(topic, user)] = seen.get((topic, user), 0) + 1
    return plans


def make_records(plans: list[Plan], answers: dict[tuple[str, str], str]) -> tuple[list[dict], dict[str, str]]:
    rng = random.Random(f"{SEED}-reactions")
    records, roles = [], {}
    for n, p in enumerate(plans, 1):
        answer = answers[(p.topic, p.ask.question)]
        messages = prompt_turns(p.ask.style, p.ask.question) + [{"role": "assistant", "content": answer}]
        fb: dict = {}
        if p.topic == "inconsistent":
            role = taste_reaction(p, answer, messages, fb, rng)
        elif p.user in HABIT:
            role = want_reaction(p, answer, messages, fb, rng)
        elif p.user == CONTRA[p.topic]:
            role = contra_reaction(p, answer, messages, fb, rng)
        else:
            role = drive_by_reaction(p, messages, fb, rng)
        record = {"id": f"cellar-log-{n:03d}", "user_id": p.user, "messages": messages}
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
        for j, (subject, style, question) in enumerate(TEST[topic]):
            n += 1
            out.append({"id": f"cellar-test-{n:02d}", "user_id": users[j % len(users)],
                        "messages": prompt_turns(style, question), "metadata": {"topic": topic, "subject": subject}})
    return out


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------
# Checks on the plan itself.
# ---------------------------------------------------------------------------------------------

OTHER_SETS = ["logs.jsonl", "test.jsonl"] + [f"{d}/{f}" for d in ("heldout", "unseen", "sealed", "reserve", "vault")
                                             for f in ("logs.jsonl", "test.jsonl")]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _other_sets() -> tuple[set[str], set[str]]:
    """Every user turn before the first answer, and every subject and topic, in the six earlier sets."""
    questions, subjects = set(), set()
    for name in OTHER_SETS:
        for line in (ROOT / "examples" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                subjects.add(row.get("metadata", {}).get("subject"))
                subjects.add(row.get("metadata", {}).get("topic"))
                seen_user = False
                for m in row["messages"]:
                    if m["role"] == "assistant" and seen_user:
                        break
                    if m["role"] == "user":
                        questions.add(_norm(m["content"]))
                        seen_user = True
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
    new = mine | set(WANT_TOPICS)  # `inconsistent` is the one topic name every set shares
    assert not new & other_s, f"a subject or want of an earlier set: {new & other_s}"
    for t in TOPICS:
        assert len(TRAIN[t]) == 2 and all(len(v) == N_TRAIN // 2 for v in TRAIN[t].values()), t
        assert len({s for s, _, _ in TEST[t]} - set(TRAIN[t])) == 1, f"{t}: needs one unlogged test subject"
        assert all(sum(s == logged for s, _, _ in TEST[t]) == 4 for logged in TRAIN[t]), t
        assert all(a.style in STYLES for asks in TRAIN[t].values() for a in asks), t
        assert all(st in STYLES for _, st, _ in TEST[t]), t
        styles = [a.style for asks in TRAIN[t].values() for a in asks]
        assert [styles.count(s) for s in STYLES] == [5, 5, 4, 4, 4], (t, styles)
    for asks in TRAIN["caps-title"].values():
        for a in asks:
            assert check({"metadata": {"topic": "caps-title"}}, f"{str(a.extra).upper()}\nx"), a.extra
            assert not check({"metadata": {"topic": "caps-title"}}, f"{_title_case(str(a.extra))}\nx"), a.extra
    for asks in TRAIN["difficulty"].values():
        assert all(a.extra[0] in range(1, 6) and a.extra[1] for a in asks)
    for t in TOPICS:
        for asks in TRAIN[t].values():
            for a in asks:
                _assert_style(a.style, a.question)
        for _, st, q in TEST[t]:
            _assert_style(st, q)
    phrasings = [i for pair in PHRASINGS_OF.values() for i in pair]
    assert sorted(phrasings) == list(range(10)), "each phrasing belongs to one user"
    assert all(len(v) == 10 for v in WANT_PHRASES.values())
    assert len(set(ALL_USERS)) == len(ALL_USERS), "user id clash"


def _assert_style(style: str, q: str) -> None:
    assert q.strip() == q and "\n" not in q, q
    if style == K:
        assert q == q.lower() and not re.search(r"[^\w' -]", q) and 3 <= len(q.split()) <= 7, q
    elif style == D:
        assert q.startswith("My ") and " says " in q and q.endswith(("Who's right?", "Which is it?")), q
    elif style == C:
        assert q.startswith(CALLBACK_OPENERS) and q.endswith("?") and q.count("?") == 1, q
    elif style == U:
        assert q.startswith(URGENT_OPENERS) and q.endswith("?"), q
    else:
        assert q.count("?") == 1 and q.endswith("?") and not q.startswith(URGENT_OPENERS + CALLBACK_OPENERS), q


# ---------------------------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------------------------


def _logged_answer(row: dict) -> tuple[str, str]:
    """(the question, the answer) of a log: the first user turn and the next assistant turn."""
    msgs = row["messages"]
    i = next(k for k, m in enumerate(msgs) if m["role"] == "user")
    j = next(k for k in range(i + 1, len(msgs)) if msgs[k]["role"] == "assistant")
    return msgs[i]["content"], msgs[j]["content"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the cellar evaluation logs and test queries.")
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where logs.jsonl and test.jsonl go (default: examples/cellar/)")
    parser.add_argument("--reuse-answers", type=Path, metavar="LOGS_JSONL",
                        help="take the logged answers from an earlier logs.jsonl (same questions) instead of generating them")
    parser.add_argument("--answers-out", type=Path, metavar="JSONL",
                        help="also write the sampled answers there, before the reactions (a file --reuse-answers reads)")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="sample the answers of N questions only (spread over the topics), print them and write nothing")
    args = parser.parse_args(argv)
    _validate()

    rows = [(t, a.style, a.question) for t in TOPICS for asks in TRAIN[t].values() for a in asks]
    t0 = time.perf_counter()
    if args.limit:
        picked = [rows[k * len(rows) // args.limit] for k in range(min(args.limit, len(rows)))]
        for (topic, _, q), a in zip(picked, generate_answers([(s, q) for _, s, q in picked])):
            print(f"--- [{topic}] {q}\n{a}\n({len(a.split())} words; check {check({'metadata': {'topic': topic}}, a)})")
        print(f"{len(picked)} answers in {time.perf_counter() - t0:.0f} s (model load included); nothing written")
        return 0
    if args.reuse_answers:
        old = {}
        for line in args.reuse_answers.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                q, a = _logged_answer(r)
                old[(r["metadata"]["topic"], q)] = a
        missing = [(t, q) for t, _, q in rows if (t, q) not in old]
        if missing:
            parser.error(f"{args.reuse_answers} has no answer for the {missing[0][0]} question {missing[0][1]!r}")
        answers = {(t, q): old[(t, q)] for t, _, q in rows}
    else:
        answers = {(t, q): a for (t, _, q), a in zip(rows, generate_answers([(s, q) for _, s, q in rows]))}
        if args.answers_out:
            write_jsonl(args.answers_out, [{"messages": prompt_turns(s, q) + [{"role": "assistant", "content": answers[(t, q)]}],
                                            "metadata": {"topic": t}} for t, s, q in rows])
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
    cols = ["base", "edits", "pass", "want-pass", "patch", "no-turn", "vague", "comment", "up-miss", "demo",
            "contra", "drive-by"]
    lines = ["  " + f"{'topic':15s}" + " ".join(f"{c:>9s}" for c in cols)]
    for topic in TOPICS:
        item = {"metadata": {"topic": topic}}
        recs = [r for r in records if r["metadata"]["topic"] == topic]
        role = lambda r: roles[r["id"]]  # noqa: E731
        edits = [r for r in recs if r.get("feedback", {}).get("edited_response")]
        want = [r for r in edits if r["user_id"] in HABIT]
        passing = lambda rs: sum(check(item, r["feedback"]["edited_response"]) for r in rs)  # noqa: E731
        patch = [r for r in edits if "edit-patch" in role(r)]
        answer = lambda r: _logged_answer(r)[1]  # noqa: E731
        after = lambda r: r["messages"][[m["role"] for m in r["messages"]].index("user") + 2:]  # noqa: E731
        row = {
            "base": f"{sum(check(item, answer(r)) for r in recs)}/{len(recs)}",
            "edits": str(len(edits)),
            "pass": f"{passing(edits)}/{len(edits)}",
            "want-pass": f"{passing(want)}/{len(want)}" if topic != "inconsistent" else "-",
            "patch": f"{passing(patch)}/{len(patch)}",
            "no-turn": str(sum(not after(r) for r in edits)),
            "vague": str(sum(role(r) == "vague" for r in recs)),
            "comment": str(sum(role(r).startswith("comment") for r in recs)),
            "up-miss": str(sum(r.get("feedback", {}).get("rating") == 1 and not check(item, answer(r))
                               and not check(item, r["feedback"].get("edited_response") or "") for r in recs)),
            "demo": str(sum(role(r).startswith("demo") for r in recs)),
            "contra": str(sum(role(r).startswith("contra") for r in recs)),
            "drive-by": str(sum(role(r).startswith("drive-by") for r in recs)),
        }
        lines.append("  " + f"{topic:15s}" + " ".join(f"{row[c]:>9s}" for c in cols))
    n_edit = sum(1 for r in records if r.get("feedback", {}).get("edited_response"))
    lines.append(f"  {n_edit}/{len(records)} logs carry an edit. (base: logged answers passing the check; pass: edits "
                 "passing it; want-pass: edits of the five want users; patch: minimal fixes passing/all; no-turn: "
                 "edits with no follow-up turn; vague: the mumbler's vague complaints; comment: the noter's logs (the "
                 "want typed into feedback.comment); up-miss: rating 1 where neither the answer nor an edit meets "
                 "the want; demo: the demonstrator's samples; contra: the contrarian's logs; drive-by: one-off "
                 "reactions unrelated to form)")
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
