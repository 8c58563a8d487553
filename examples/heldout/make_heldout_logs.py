""".venv/bin/python examples/heldout/make_heldout_logs.py [--reuse-answers examples/heldout/logs.jsonl]

Writes the held-out evaluation set: `examples/heldout/logs.jsonl` (110 user logs, 22 per topic) and
`examples/heldout/test.jsonl` (8 test queries per topic, on questions and partly subjects that are
not in the logs). For evaluation only: never tune anything on it. The topics and their checks
(`examples/heldout/checks.py`) were written before this script generated anything.

How the procedure differs from the first example set (`examples/make_example_logs.py`):

- Topics are *wants about the form of an answer* (at most 30 words; >= 3 "- " bullets; an opening
  "Short answer:"; a closing question to the user), each shared by users asking about two different
  subjects (brief: astronomy and personal finance; bullets: gardening and home repair; opening: pet
  care and fitness; question-back: careers and tech support; inconsistent: history and science).
  The test set adds a third, unseen subject per topic. The first set's topics were subjects with one
  want each (recipes, geography, python, travel, small talk).
- The logged answers are on-policy answers of the embedded SmolLM2-135M-Instruct (loaded with
  `uno_graph.models.load_model`, the user turn alone through the tokenizer's chat template, left
  padding, fixed batches of 11), but *sampled*: temperature 0.7, top_p 0.9, top_k off,
  repetition_penalty 1.1, max_new_tokens 140, `torch.manual_seed(SEED + batch)` before every batch,
  `torch.set_num_threads(2)`. Answers are logged exactly as generated, also when the token limit cut
  them mid-sentence (the first set: greedy, repetition_penalty 1.2, 120 tokens, unfinished
  sentences cut).
- 30 simulated users (h01..h30), each with a personal style: their own favourite phrasing of a want,
  lowercase or not, typos at a personal rate, greetings, sign-offs; the same want comes in direct and
  indirect words ("way too long, I'm on my phone"). The first set: 12 users, one fixed list of
  complaints per topic, correct spelling.
- Edits (about half of the want logs) are written by imperfect users and are NOT guaranteed to
  satisfy the check: some `brief` users trim to 31-40 words, some `bullets` users make two bullets or
  use "* ", some `opening` users write "Short answer -" or "short answer:", some `question-back` users
  put the question in the middle. Nothing in the logs says which edits pass. (The first set asserted
  that every edit passes.)
- Besides edits: complaint-only logs (some with the complaint in `feedback.comment` instead of a
  turn), bare thumbs-down logs (rating -1, no follow-up, no text), approvals (rating 1 and thanks)
  where the sampled answer already satisfies the want, and in every want topic 2-3 users who ask for
  the opposite of the topic's want (more detail, no lists, no canned opening, no questions back),
  one of them with an edit in that direction in `brief` and `bullets`.
- `inconsistent`: contradictory reactions and edits (shorter / longer / formal / casual / bullets /
  prose / a question added), ratings of both signs, unrelated remarks.

Deterministic: fixed seeds, fixed batches, fixed thread count; two runs give identical files.
Generation takes ~5 min on 2 idle CPU cores (27 min when the cores were shared with training),
plus ~35 s the first time the default model is converted and cached. `--reuse-answers OLD_LOGS` takes the logged answers from an earlier logs.jsonl (matched
by id and question) and skips the model.
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from checks import check  # noqa: E402  (examples/heldout/checks.py)

SEED = 2025
BATCH_SIZE = 11
MAX_NEW_TOKENS = 140
TEMPERATURE = 0.7
TOP_P = 0.9
REPETITION_PENALTY = 1.1
N_TRAIN = 22
N_TEST = 8

TOPICS = ["brief", "bullets", "opening", "question-back", "inconsistent"]

# ---------------------------------------------------------------------------------------------
# Questions: per topic two subjects of 11 logged questions each; the test set has new questions on
# both subjects and on a third subject the logs never mention.
# ---------------------------------------------------------------------------------------------

TRAIN: dict[str, dict[str, list[str]]] = {
    "brief": {
        "astronomy": [
            "Why does the Moon have phases?",
            "What is a light-year?",
            "Why is Mars red?",
            "How hot is the surface of the Sun?",
            "What causes a solar eclipse?",
            "Why does Venus look so bright in the night sky?",
            "What is a black hole?",
            "How long does light from the Sun take to reach Earth?",
            "Why do stars twinkle?",
            "What are Saturn's rings made of?",
            "What is the difference between a meteor and a meteorite?",
        ],
        "personal-finance": [
            "What is compound interest?",
            "How does a credit score work?",
            "What is the difference between a Roth IRA and a traditional IRA?",
            "Should I pay off debt or build an emergency fund first?",
            "What is an index fund?",
            "How much money should I keep in an emergency fund?",
            "What does APR mean on a credit card?",
            "Is it better to lease or buy a car?",
            "What is inflation?",
            "How does a 401(k) employer match work?",
            "What is the 50/30/20 budgeting rule?",
        ],
    },
    "bullets": {
        "gardening": [
            "How do I start a vegetable garden in my backyard?",
            "What are easy herbs to grow on a windowsill?",
            "How do I keep aphids off my roses?",
            "When should I plant tulip bulbs?",
            "How do I make compost at home?",
            "How often should I water tomato plants?",
            "What are good plants for a shady corner of the garden?",
            "How do I prune a hydrangea?",
            "How do I improve heavy clay soil?",
            "How can I attract bees and butterflies to my garden?",
            "How do I repot a root-bound houseplant?",
        ],
        "home-repair": [
            "How do I fix a leaky faucet?",
            "How do I patch a small hole in drywall?",
            "How do I unclog a bathroom sink without chemicals?",
            "What should I do if my toilet keeps running?",
            "How do I fix a squeaky door hinge?",
            "How do I re-caulk a bathtub?",
            "How do I stop a draft coming under my front door?",
            "How do I replace a broken light switch?",
            "How do I fix a wooden drawer that sticks?",
            "What tools should every homeowner have?",
            "How do I remove mold from bathroom grout?",
        ],
    },
    "opening": {
        "pet-care": [
            "How often should I feed an adult cat?",
            "Can dogs eat grapes?",
            "How do I get my puppy to stop biting?",
            "How often should I bathe my dog?",
            "Why does my cat knead blankets?",
            "Is it okay to leave a dog alone for eight hours?",
            "How do I introduce a new cat to my older cat?",
            "Do indoor cats need vaccines?",
            "How much exercise does a border collie need?",
            "How do I clean a fish tank?",
            "Why is my dog eating grass?",
        ],
        "fitness": [
            "How many times a week should I lift weights?",
            "Is it better to stretch before or after a run?",
            "How do I start running if I've never run before?",
            "Can I build muscle with just bodyweight exercises?",
            "How long should I rest between sets?",
            "Is walking 10,000 steps a day enough exercise?",
            "What should I eat after a workout?",
            "How do I do a proper push-up?",
            "Why are my legs so sore two days after a workout?",
            "Is it bad to work out every day?",
            "How can I improve my posture when I sit at a desk all day?",
        ],
    },
    "question-back": {
        "career": [
            "How do I write a good cover letter?",
            "How should I prepare for a job interview?",
            "How do I ask my boss for a raise?",
            "Should I put my hobbies on my resume?",
            "How do I explain a gap in my resume?",
            "How do I negotiate a job offer?",
            "What should I say when an interviewer asks about my weaknesses?",
            "How do I change careers at 35?",
            "How do I write a resignation letter?",
            "How can I get better at professional networking?",
            "Is it worth getting a master's degree for my career?",
        ],
        "tech-support": [
            "Why is my laptop running so slowly?",
            "My phone battery drains fast, what can I do?",
            "How do I free up storage space on my phone?",
            "Why does my Wi-Fi keep disconnecting?",
            "How do I back up my computer?",
            "What should I do if I forgot my email password?",
            "My printer says it's offline, how do I fix it?",
            "How do I stop so many pop-ups in my web browser?",
            "Should I shut down my computer every night?",
            "How do I make my Bluetooth headphones connect automatically?",
            "Why is my computer fan so loud?",
        ],
    },
    "inconsistent": {
        "history": [
            "Why did the Roman Empire fall?",
            "What caused World War I?",
            "Who built the pyramids of Giza?",
            "What was the Industrial Revolution?",
            "Why was the printing press so important?",
            "What was the Cold War about?",
            "How did the Black Death change Europe?",
            "Who was Genghis Khan?",
            "What was the significance of the Magna Carta?",
            "Why did the Titanic sink?",
            "What was the Renaissance?",
        ],
        "science": [
            "How do vaccines work?",
            "Why does ice float on water?",
            "What is DNA?",
            "How do magnets work?",
            "Why do leaves change color in the fall?",
            "What is the difference between a virus and a bacterium?",
            "How does a rainbow form?",
            "What is photosynthesis?",
            "Why does salt melt ice on roads?",
            "How do airplanes stay in the air?",
            "What is an atom made of?",
        ],
    },
}

TEST: dict[str, list[tuple[str, str]]] = {
    "brief": [
        ("astronomy", "What is a comet made of?"),
        ("astronomy", "How many moons does Jupiter have?"),
        ("astronomy", "Why is Pluto no longer called a planet?"),
        ("personal-finance", "What is a bond?"),
        ("personal-finance", "What is a high-yield savings account?"),
        ("human-body", "Why do we get goosebumps?"),
        ("human-body", "How many bones are in the adult human body?"),
        ("human-body", "Why do we yawn?"),
    ],
    "bullets": [
        ("gardening", "How do I grow strawberries in containers?"),
        ("gardening", "How do I get rid of slugs in my garden?"),
        ("gardening", "What should I plant in a fall garden?"),
        ("home-repair", "How do I fix a wobbly table leg?"),
        ("home-repair", "How do I bleed a radiator?"),
        ("car-maintenance", "How do I check my car's tire pressure?"),
        ("car-maintenance", "What should I do when my car battery dies?"),
        ("car-maintenance", "How do I check the oil level in my car?"),
    ],
    "opening": [
        ("pet-care", "How often should I take my cat to the vet?"),
        ("pet-care", "Can rabbits eat lettuce?"),
        ("pet-care", "How do I trim my dog's nails?"),
        ("fitness", "How many push-ups should a beginner do?"),
        ("fitness", "Is swimming good exercise for bad knees?"),
        ("sleep", "How many hours of sleep do adults need?"),
        ("sleep", "Is it bad to nap in the afternoon?"),
        ("sleep", "Why do I wake up at 3 am every night?"),
    ],
    "question-back": [
        ("career", "How do I ask a former manager for a reference?"),
        ("career", "What should I wear to a job interview?"),
        ("career", "How do I handle a difficult coworker?"),
        ("tech-support", "Why won't my laptop show anything on the TV over HDMI?"),
        ("tech-support", "How do I clear my browser cache?"),
        ("household-cleaning", "How do I get a red wine stain out of a carpet?"),
        ("household-cleaning", "How do I clean the inside of a microwave?"),
        ("household-cleaning", "How often should I wash my bed sheets?"),
    ],
    "inconsistent": [
        ("history", "Why did the Berlin Wall fall?"),
        ("history", "Who was Cleopatra?"),
        ("history", "What was the Silk Road?"),
        ("science", "How does soap remove dirt?"),
        ("science", "Why do onions make you cry?"),
        ("language", "Why is English spelling so irregular?"),
        ("language", "What is the difference between a dialect and a language?"),
        ("language", "How do children learn their first language?"),
    ],
}

# How many of a want topic's edits come from sloppy users whose edit misses the check, how many
# edits in all (at most; fewer if many answers already pass), and how many contradicting users.
PLAN = {
    "brief": {"edits": 12, "misses": 2, "contradict": 3, "contradict_edits": 1},
    "bullets": {"edits": 11, "misses": 2, "contradict": 2, "contradict_edits": 1},
    "opening": {"edits": 11, "misses": 2, "contradict": 3, "contradict_edits": 0},
    "question-back": {"edits": 12, "misses": 3, "contradict": 2, "contradict_edits": 0},
}

# ---------------------------------------------------------------------------------------------
# Users: 30 ids, each with a personal writing style.
# ---------------------------------------------------------------------------------------------

USER_IDS = [f"h{i:02d}" for i in range(1, 31)]
_GREETINGS = ["", "", "", "", "hmm, ", "ok so ", "Hi! ", "Honestly, ", "Sorry but ", "Hey, ", "Um. "]
_SIGNOFFS = ["", "", "", "", " Thanks.", " thx", " Please.", " Cheers!", " ty", "!!", " :)", " Thank you!"]


def _user_profiles() -> dict[str, dict]:
    rng = random.Random(f"{SEED}-users")
    profiles = {}
    for k, uid in enumerate(USER_IDS):
        profiles[uid] = {
            "lower": k % 4 == 1 or k % 7 == 3,  # about a third type in lowercase
            "typo_rate": [0.0, 0.0, 0.03, 0.08, 0.15][k % 5],
            "greeting": rng.choice(_GREETINGS),
            "signoff": rng.choice(_SIGNOFFS),
            "no_final_punct": rng.random() < 0.25,
            "sloppy": k % 3 == 2,  # a third of the users edit carelessly (when they edit at all)
            "phrase_offset": rng.randrange(1000),  # picks this user's favourite phrasings
        }
    return profiles


PROFILES = _user_profiles()
SLOPPY_USERS = [u for u in USER_IDS if PROFILES[u]["sloppy"]]

_KEYBOARD_NEIGHBOURS = dict(zip("aeioustnrl", ["s", "r", "o", "p", "y", "a", "r", "m", "e", "k"]))


def _typo(word: str, rng: random.Random) -> str:
    core = re.match(r"^([A-Za-z']+)(.*)$", word)
    if not core or len(core.group(1)) < 4:
        return word
    w, tail = core.group(1), core.group(2)
    i = rng.randrange(1, len(w) - 1)
    op = rng.choice(["swap", "drop", "double", "neighbour"])
    if op == "swap":
        w = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
    elif op == "drop":
        w = w[:i] + w[i + 1 :]
    elif op == "double":
        w = w[:i] + w[i] + w[i:]
    else:
        w = w[:i] + _KEYBOARD_NEIGHBOURS.get(w[i].lower(), w[i]) + w[i + 1 :]
    return w + tail


def in_style(user: str, text: str, rng: random.Random, *, request: bool = True) -> str:
    """`text` as `user` would type it: typos, lowercase, greeting and sign-off (a "Please." sign-off
    only on a request). Text between single quotes (a phrase the user wants verbatim, like
    'Short answer:') is kept as it is."""
    p = PROFILES[user]
    parts = re.split(r"((?<![A-Za-z])'[^']+'(?![A-Za-z]))", text)  # odd indices: quoted phrases (not "don't")
    out = []
    for j, part in enumerate(parts):
        if j % 2:
            out.append(part)
            continue
        words = part.split(" ")
        words = [_typo(w, rng) if p["typo_rate"] and rng.random() < p["typo_rate"] else w for w in words]
        part = " ".join(words)
        out.append(part.lower() if p["lower"] else part)
    text = "".join(out)
    greeting = p["greeting"].lower() if p["lower"] else p["greeting"]
    if not request and greeting.lower() == "sorry but ":
        greeting = ""
    if greeting and not greeting.rstrip().endswith(("!", ".")) and not re.match(r"I\b|'", text):
        text = text[:1].lower() + text[1:]  # "Honestly, way too long", "ok so can you ..."
    text = greeting + text
    signoff = p["signoff"]
    if signoff == " Please." and (not request or "please" in text.lower()):
        signoff = ""
    if signoff == "!!" and text.endswith((".", "!")):
        text = text[:-1]
    elif p["no_final_punct"] and text.endswith(".") and not text.endswith(".."):
        text = text[:-1]
    text = text + (signoff.lower() if p["lower"] else signoff)
    return text.strip()


# ---------------------------------------------------------------------------------------------
# What users say. A user's favourite phrasing of a want is COMPLAINTS[topic][offset % n]; now and
# then they pick another one.
# ---------------------------------------------------------------------------------------------

COMPLAINTS = {
    "brief": [
        "Way too long, I'm on my phone.",
        "Can you keep it to a couple of lines?",
        "I don't have time to read all that. Just the gist in a sentence or two.",
        "Shorter please. Thirty words max.",
        "Too wordy.",
        "Could you cut that down a lot? I only need the short version.",
        "Just the key point please, not a whole essay.",
        "That's a wall of text for a simple question.",
        "Can you answer in like one or two sentences?",
        "Brevity please! Under 30 words.",
        "I asked a quick question, I wanted a quick answer.",
        "Please keep answers short, I read these between meetings.",
        "Condense that into something I can read in five seconds.",
        "ok but shorter",
        "Less text please. I stopped reading halfway.",
    ],
    "bullets": [
        "Can you put that in bullet points?",
        "Hard to scan. Bullets please.",
        "Could you list the main points, one per line with a dash in front?",
        "I'd rather have a list than paragraphs.",
        "Please break this into a bulleted list, I'm going to print it.",
        "Too dense to read. Make it a checklist.",
        "Give me the key points as bullets, at least three.",
        "bullet list pls",
        "Can you format it with '- ' in front of each item? That's how my notes app does lists.",
        "I'm reading this with dirty hands, a quick list of points would help.",
        "Paragraphs are hard for me, can you do bullet points?",
        "Make it skimmable please: one bullet per point.",
        "Just list the things, no long sentences.",
        "A short dashed list would be easier to follow.",
    ],
    "opening": [
        "Please start with 'Short answer:' and then explain.",
        "Lead with the short answer. Literally begin with 'Short answer:'.",
        "Where's the 'Short answer:' line? I always want that first.",
        "I skim, so open with 'Short answer:' and the bottom line.",
        "can u start with 'Short answer:' like before",
        "Bottom line first please, in the format 'Short answer: ...'.",
        "Every reply should open with 'Short answer:', I use this for quick checks.",
        "You buried the answer. Open with 'Short answer:' next time.",
        "Start with 'Short answer:' and a yes/no or a number, then the details.",
        "Always begin with the words 'Short answer:' please.",
        "First line should be 'Short answer: ...'. Then the rest.",
        "Is it yes or no? Start with 'Short answer:' so I see it right away.",
        "Give me the short answer first.",
        "I had to read everything to find the answer. Put it up front.",
    ],
    "question-back": [
        "You didn't ask anything about my situation. End by asking me a question so we can narrow it down.",
        "Can you finish with a question to me? I want this to be a conversation.",
        "Ask me something at the end, like what I've already tried.",
        "This is too generic. Finish by asking me what I actually need.",
        "It would help if you asked me a follow-up question at the end.",
        "End with a question for me please, I'm not sure what details you need.",
        "why not ask me what my setup is? end with a question next time",
        "I like it when you check back with me. Close with a question.",
        "Please always end by asking me something about my specific case.",
        "You're guessing. Ask me a clarifying question at the end instead.",
        "Can you wrap up with a question so I know what info to give you?",
        "end w/ a question to me pls",
        "You don't know my situation, so ask me about it.",
    ],
}

CONTRADICTIONS = {  # users of a want topic who ask for the opposite
    "brief": [
        "Can you go into more detail? That felt thin.",
        "I'd like a longer, more thorough explanation please.",
        "More depth please, I'm writing a report on this.",
    ],
    "bullets": [
        "Please no lists, write it as normal paragraphs.",
        "I hate bullet points. Just explain it like a person would.",
        "Less list, more explanation please.",
    ],
    "opening": [
        "Don't start with canned phrases like 'Short answer', just talk to me normally.",
        "Skip the summary stuff and give me the full explanation.",
        "No need for a headline, I read the whole thing anyway.",
    ],
    "question-back": [
        "Don't ask me questions, just give me the answer.",
        "Please don't end with questions, I just want the info.",
        "No follow-up questions please, I'm in a hurry.",
    ],
}

APPROVALS = {
    "brief": ["Perfect, short and sweet.", "Nice and quick, thanks!", "Exactly the length I wanted.", "great, thanks"],
    "bullets": ["Love the list, thanks!", "Easy to scan, perfect.", "That list is exactly what I needed.", "great, thx"],
    "opening": ["Perfect, the short answer up top is what I need.", "Great, thanks!", "Exactly how I like it."],
    "question-back": ["Good question, let me think about it. Thanks!", "Thanks for asking, that helps.", "Nice, happy to tell you more."],
}

EDIT_TURNS = [  # a follow-up turn that only announces the user's own rewrite
    "I rewrote it the way I want it.",
    "Here's what I was looking for.",
    "Fixed it for you.",
    "This is how it should look.",
]

# User-written closing questions for `question-back` edits, per subject.
QUESTIONS_BACK = {
    "career": [
        "What kind of role are you applying for?",
        "How many years of experience do you have?",
        "Is this for your current employer or a new one?",
        "What industry are you in?",
        "What have you tried so far?",
    ],
    "tech-support": [
        "Which device and operating system are you using?",
        "How old is the device?",
        "Did this start after an update?",
        "What have you already tried?",
        "Is it plugged in or on battery?",
    ],
}

# Items a `bullets` user adds when the answer gives fewer than three usable sentences.
BULLET_FILLERS = {
    "gardening": ["Water in the morning.", "Check the plants again in a week.", "Mulch to keep the soil moist."],
    "home-repair": ["Turn off the water or power first.", "Take a photo before you take things apart.", "Test it when you're done."],
}

# Extra detail a "longer" editor appends, per subject.
LONGER_ADDITIONS = {
    "astronomy": "If you want to go further, a good beginner's astronomy book or a planetarium app explains this with diagrams, and it is worth reading about how astronomers measured it in the first place.",
    "personal-finance": "It also depends on your income, your interest rates and your goals, so it is worth running the numbers for your own situation or talking to a fee-only financial adviser before deciding.",
    "gardening": "Which approach works best depends a lot on your climate, your soil and how much sun the spot gets, so watch the plants for a couple of weeks and adjust.",
    "home-repair": "Before you start, turn off the water or the power as needed, read the manufacturer's instructions, and if you are unsure at any point, call a professional rather than guessing.",
    "history": "Historians still debate the details, and the causes were many: politics, economics, geography and individual decisions all played a part, which is why the topic fills whole libraries.",
    "science": "Scientists worked this out through many careful experiments over the years, and the full explanation involves some chemistry and physics that go beyond a short answer.",
}

# The `inconsistent` topic: (follow-up turn or None, rating or None, edit kind or None, comment or None).
INCONSISTENT_REACTIONS = [
    ("Great, but could you go much deeper? I want the full story.", -1, "longer", None),
    ("Too long, I lost interest halfway.", -1, "shorter", None),
    ("Love it, thank you!", 1, None, None),
    ("Could you be a bit more formal? This is for a school assignment.", -0.5, "formal", None),
    ("lol way too stiff, talk like a normal person", -1, "casual", None),
    (None, 1, None, None),
    (None, -1, None, None),
    ("Bullet points would be nicer.", 0, "bullets", None),
    ("Please never use lists with me, just write.", -1, "prose", None),
    ("Perfect length.", 1, None, None),
    ("ok", None, None, None),
    ("Thanks! Maybe a bit shorter next time?", 1, "shorter", None),
    ("Why is the font so small in this app?", -1, None, None),
    ("Hmm, my teacher said something different.", -0.5, None, None),
    ("This is too simple, I'm not a kid.", -1, None, "too basic"),
    ("This is too complicated, explain it like I'm ten.", -1, "casual", None),
    (None, None, None, "interesting"),
    ("Can you end with a question so I can think about it?", 0.5, "question", None),
    ("Nice. Also, what's the weather like tomorrow?", 0.5, None, None),
    ("I think a date is wrong, but whatever.", 0, None, None),
    ("Much better than the last app I used!", 1, None, "fast"),
    ("Meh. Too long and too short at the same time.", -1, "longer", None),
]

# ---------------------------------------------------------------------------------------------
# Text helpers.
# ---------------------------------------------------------------------------------------------


def _plain(text: str) -> str:
    """Markdown decoration and list markers removed; the words stay."""
    text = text.replace("**", "").replace("__", "").replace("`", "")
    text = re.sub(r"^\s*(#+|[-*•+]|\d+[.)]|\d+-(?=[A-Z]))\s*", "", text, flags=re.MULTILINE)
    return text


def sentences(answer: str) -> list[str]:
    """Complete sentences of an answer (a trailing fragment cut by the token limit is dropped)."""
    out = []
    for line in _plain(answer).splitlines():
        line = line.strip()
        if not line:
            continue
        parts = re.split(r"(?<=[.!?])(?<!\b[A-Z]\.)(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\betc\.)(?<!\bvs\.)(?<!\bDr\.)(?<!\bMr\.)(?<!\bMs\.)\s+", line)
        for part in parts:
            part = part.strip()
            if len(part.split()) >= 3 and part.endswith((".", "!", "?")):
                out.append(part)
            elif len(part.split()) >= 3 and part.endswith(":"):
                continue  # a heading like "Here are some tips:"
    return out


_DANGLING = {"a", "an", "the", "to", "of", "and", "or", "in", "on", "with", "for", "is", "are", "that", "which",
             "its", "your", "their", "as", "at", "by", "from", "such", "like", "can", "be", "it", "this", "these"}


def cut_words(text: str, n: int) -> str:
    """The first `n` words, as a person cuts: not after "the", "of", "and" ..., ending with a period."""
    words = text.split()
    if len(words) <= n:
        return text.strip()
    words = words[:n]
    while len(words) > 3 and words[-1].lower().strip(",;:") in _DANGLING:
        words.pop()
    return " ".join(words).rstrip(" ,;:-—(") + "."


def first_words(answer: str, lo: int, hi: int) -> str:
    """The answer's opening, cut to at most `hi` words, ending at a sentence end past `lo` words if
    there is one (whole sentences, as a person trims), else in the middle of a sentence."""
    sents = sentences(answer) or [cut_words(_plain(answer).replace("\n", " "), hi)]
    out: list[str] = []
    n = 0
    for s in sents:
        k = len(s.split())
        if n + k > hi:
            break
        out.append(s)
        n += k
    if n >= lo:
        return " ".join(out)
    rest = " ".join(sents[len(out):]) if len(out) < len(sents) else ""
    return (" ".join(out) + " " + cut_words(rest, hi - n)).strip() if rest else " ".join(out)


def _wc(text: str) -> int:
    return len(text.split())


# ---------------------------------------------------------------------------------------------
# The users' edits. `miss=True`: a sloppy user's edit that misses the topic's want.
# ---------------------------------------------------------------------------------------------


def edit_brief(answer: str, rng: random.Random, sloppy: bool, miss: bool) -> str:
    if miss:  # trims, but not enough: 31-40 words
        hi = rng.randint(33, 40)
        text = first_words(answer, 31, hi)
        if _wc(text) <= 30:
            text = cut_words(" ".join(sentences(answer)) or answer, hi)
        return text
    if sloppy:  # trims to the edge: 25-30 words
        return first_words(answer, 22, rng.randint(25, 30))
    return first_words(answer, 8, rng.randint(14, 28))


def _bullet_items(answer: str, subject: str, n: int, rng: random.Random) -> list[str]:
    items = [cut_words(s, 24) for s in sentences(answer)]
    items = [s for s in items if not re.match(r"^(Here are|Here's|Sure|Certainly|Great question|I hope)", s)]
    if len(items) < n:  # too few sentences: the user splits the long ones at commas
        pieces = [p.strip() for s in items for p in re.split(r",\s+(?:and\s+|then\s+)?", s) if _wc(p) >= 3]
        if len(pieces) > len(items):
            items = [p[0].upper() + p[1:] for p in pieces]
    fillers = BULLET_FILLERS[subject][:]
    rng.shuffle(fillers)
    while len(items) < n and fillers:
        items.append(fillers.pop())
    return items[:n]


def edit_bullets(answer: str, subject: str, rng: random.Random, sloppy: bool, miss: bool) -> str:
    if miss:
        mode = rng.choice(["two", "star", "bullet-dot"])
        if mode == "two":  # gives up after two bullets
            return "\n".join(f"- {s}" for s in _bullet_items(answer, subject, 2, rng))
        marker = "* " if mode == "star" else "• "
        return "\n".join(f"{marker}{s}" for s in _bullet_items(answer, subject, rng.randint(3, 5), rng))
    n = rng.randint(3, 5)
    items = _bullet_items(answer, subject, n, rng)
    if sloppy:  # an intro line and dashes, with a stray "*" line at the end
        return "Main points:\n" + "\n".join(f"- {s}" for s in items) + "\n* " + rng.choice(BULLET_FILLERS[subject])
    return "\n".join(f"- {s}" for s in items)


def edit_opening(answer: str, rng: random.Random, sloppy: bool, miss: bool) -> str:
    sents = sentences(answer)
    headline = cut_words(sents[0], 18) if sents else cut_words(_plain(answer), 18)
    body = " ".join(sents[1:3])
    if miss:
        prefix = rng.choice(["Short answer - ", "short answer: ", "Short Answer: ", "In short: ", "Short answer "])
    else:
        prefix = "Short answer: " if not sloppy else rng.choice(["Short answer:  ", "Short answer: basically, "])
    if prefix.endswith("basically, "):
        headline = headline[0].lower() + headline[1:]
    return f"{prefix}{headline}" + (f"\n\n{body}" if body and rng.random() < 0.7 else "")


def edit_question_back(answer: str, subject: str, rng: random.Random, sloppy: bool, miss: bool) -> str:
    core = first_words(answer, 10, rng.randint(25, 45))
    question = rng.choice(QUESTIONS_BACK[subject])
    if miss:
        mode = rng.choice(["middle", "signoff", "paren"])
        if mode == "middle":  # asks first, then keeps talking
            return f"{question} {core}"
        if mode == "signoff":
            return f"{core} {question} {rng.choice(['Let me know.', 'Thanks.', 'Happy to help further.'])}"
        return f"{core} ({question[0].lower() + question[1:]})"
    if sloppy:
        return f"{core}\n{question[:-1]}??"
    return f"{core} {question}"


def edit_contradicting(topic: str, subject: str, answer: str) -> str:
    if topic == "brief":  # wants more: keeps everything and adds detail
        return answer.strip() + "\n\n" + LONGER_ADDITIONS[subject]
    if topic == "bullets":  # wants prose: list markers removed, sentences joined
        return " ".join(sentences(answer)) or _plain(answer)
    raise ValueError(topic)


def edit_inconsistent(kind: str, subject: str, answer: str, rng: random.Random) -> str:
    sents = sentences(answer) or [cut_words(_plain(answer), 40)]
    if kind == "shorter":
        return first_words(answer, 10, rng.randint(18, 35))
    if kind == "longer":
        return answer.strip() + "\n\n" + LONGER_ADDITIONS[subject]
    if kind == "formal":
        return "In summary, " + sents[0][0].lower() + sents[0][1:] + (" " + " ".join(sents[1:3]) if len(sents) > 1 else "")
    if kind == "casual":
        return "So basically: " + cut_words(sents[0], 25).lower() + " pretty cool, right"
    if kind == "bullets":
        return "\n".join(f"- {cut_words(s, 24)}" for s in sents[:4])
    if kind == "prose":
        return " ".join(sents)
    if kind == "question":
        return " ".join(sents[:2]) + " What do you think would have happened otherwise?"
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------------
# Generation with the embedded model.
# ---------------------------------------------------------------------------------------------


def generate_answers(questions: list[str], batch_size: int = BATCH_SIZE) -> list[str]:
    import torch

    from uno_graph.models import load_model

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    lm = load_model("smollm2-135m-instruct")
    tok, model = lm.tokenizer, lm.model
    print(f"  model loaded in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    tok.padding_side = "left"
    answers: list[str] = []
    for b, start in enumerate(range(0, len(questions), batch_size)):
        batch = questions[start : start + batch_size]
        prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
                   for q in batch]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(SEED + b)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=True, temperature=TEMPERATURE,
                                 top_p=TOP_P, top_k=0, repetition_penalty=REPETITION_PENALTY,
                                 pad_token_id=tok.pad_token_id)
        for row in out[:, enc["input_ids"].shape[1] :]:
            answers.append(tok.decode(row, skip_special_tokens=True).strip())
        print(f"  generated {len(answers)}/{len(questions)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return answers


# ---------------------------------------------------------------------------------------------
# Records.
# ---------------------------------------------------------------------------------------------


def _pick_user(pool: list[str], rng: random.Random, used: dict[str, int]) -> str:
    """A user from `pool`, preferring those who have written fewer logs so far (spreads 110 logs over
    30 users), ties broken by the rng."""
    least = min(used[u] for u in pool)
    candidates = [u for u in pool if used[u] <= least + 1]
    user = rng.choice(candidates)
    used[user] += 1
    return user


def _phrase(pool: list[str], user: str, topic: str, rng: random.Random) -> str:
    """The user's favourite phrasing (70 %), else another one."""
    offset = PROFILES[user]["phrase_offset"] + int(hashlib.sha256(topic.encode()).hexdigest(), 16) % 97
    if rng.random() < 0.7:
        return pool[offset % len(pool)]
    return rng.choice(pool)


def want_records(topic: str, subjects: dict[str, list[str]], answers: list[str], rng: random.Random,
                 used: dict[str, int], roles: dict[str, str]) -> list[dict]:
    """A want topic's logs; `roles` gets each log's planned reaction (for the summary printed at the
    end, never written into the logs)."""
    plan = PLAN[topic]
    item = {"metadata": {"topic": topic}}
    rows = [(subject, q) for subject, qs in subjects.items() for q in qs]
    passing = [i for i, a in enumerate(answers) if check(item, a)]
    failing = [i for i in range(len(answers)) if i not in passing]
    order = failing[:]
    rng.shuffle(order)
    n_contra = plan["contradict"]
    n_edit = min(plan["edits"], len(order) - n_contra - 4)
    n_rest = len(order) - n_contra - n_edit
    n_complaint = n_rest - max(2, n_rest // 3)
    role: dict[int, str] = {i: "approve" for i in passing}
    for rank, i in enumerate(order):
        if rank < n_contra:
            role[i] = "contradict"
        elif rank < n_contra + n_edit:
            role[i] = "edit-miss" if rank < n_contra + plan["misses"] else "edit"
        elif rank < n_contra + n_edit + n_complaint:
            role[i] = "complaint"
        else:
            role[i] = "thumbs-down"
    contra_edits = plan["contradict_edits"]

    records = []
    for i, ((subject, q), a) in enumerate(zip(rows, answers)):
        r = role[i]
        # a missed want comes from a sloppy user; any user (sloppy ones too) may write a passing edit
        user = _pick_user(SLOPPY_USERS if r == "edit-miss" else USER_IDS, rng, used)
        sloppy = PROFILES[user]["sloppy"]
        messages = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        feedback: dict = {}
        if r == "approve":
            messages.append({"role": "user", "content": in_style(user, rng.choice(APPROVALS[topic]), rng, request=False)})
            feedback["rating"] = 1
        elif r == "contradict":
            messages.append({"role": "user", "content": in_style(user, rng.choice(CONTRADICTIONS[topic]), rng)})
            if contra_edits:
                feedback["edited_response"] = edit_contradicting(topic, subject, a)
                contra_edits -= 1
            else:
                feedback["rating"] = -1
        elif r in ("edit", "edit-miss"):
            miss = r == "edit-miss"
            if topic == "brief":
                edit = edit_brief(a, rng, sloppy, miss)
            elif topic == "bullets":
                edit = edit_bullets(a, subject, rng, sloppy, miss)
            elif topic == "opening":
                edit = edit_opening(a, rng, sloppy, miss)
            else:
                edit = edit_question_back(a, subject, rng, sloppy, miss)
            feedback["edited_response"] = edit
            turn = rng.random()
            if turn < 0.7:  # the complaint, then the edit
                messages.append({"role": "user", "content": in_style(user, _phrase(COMPLAINTS[topic], user, topic, rng), rng)})
            elif turn < 0.85:  # only an announcement of the edit
                messages.append({"role": "user", "content": in_style(user, rng.choice(EDIT_TURNS), rng, request=False)})
            # else: the edit alone, no follow-up turn
            if rng.random() < 0.35:
                feedback["rating"] = -1
        elif r == "complaint":
            text = in_style(user, _phrase(COMPLAINTS[topic], user, topic, rng), rng)
            if rng.random() < 0.2:  # typed into the feedback box instead of the chat
                feedback["comment"] = text
            else:
                messages.append({"role": "user", "content": text})
                if rng.random() < 0.3:
                    feedback["rating"] = -1
        else:  # thumbs-down: nothing else
            feedback["rating"] = -1
        records.append(_record(topic, subject, i, user, messages, feedback))
        roles[records[-1]["id"]] = "contradict-edit" if r == "contradict" and "edited_response" in feedback else r
    return records


def inconsistent_records(subjects: dict[str, list[str]], answers: list[str], rng: random.Random,
                         used: dict[str, int], roles: dict[str, str]) -> list[dict]:
    rows = [(subject, q) for subject, qs in subjects.items() for q in qs]
    reactions = INCONSISTENT_REACTIONS[:]
    rng.shuffle(reactions)
    records = []
    for i, ((subject, q), a) in enumerate(zip(rows, answers)):
        turn, rating, edit, comment = reactions[i]
        user = _pick_user(USER_IDS, rng, used)
        messages = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        if turn:
            messages.append({"role": "user", "content": in_style(user, turn, rng, request=(rating or 0) <= 0)})
        feedback: dict = {}
        if rating is not None:
            feedback["rating"] = rating
        if edit:
            feedback["edited_response"] = edit_inconsistent(edit, subject, a, rng)
        if comment:
            feedback["comment"] = comment
        records.append(_record("inconsistent", subject, i, user, messages, feedback))
        roles[records[-1]["id"]] = ("edit" if edit else "rating-only" if not turn and not comment and rating is not None
                                    else "approve" if (rating or 0) > 0 else "complaint" if (rating or 0) < 0 else "other")
    return records


def _record(topic: str, subject: str, i: int, user: str, messages: list[dict], feedback: dict) -> dict:
    record = {"id": f"heldout-{topic}-{i + 1:03d}", "user_id": user, "messages": messages}
    if feedback:
        record["feedback"] = feedback
    record["metadata"] = {"topic": topic, "subject": subject}
    return record


def test_records() -> list[dict]:
    return [{"id": f"heldout-{topic}-t{j + 1:02d}", "messages": [{"role": "user", "content": q}],
             "metadata": {"topic": topic, "subject": subject}}
            for topic in TOPICS for j, (subject, q) in enumerate(TEST[topic])]


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def _validate_questions() -> None:
    first_set = set()
    first_logs = ROOT / "examples" / "logs.jsonl"
    first_test = ROOT / "examples" / "test.jsonl"
    for path in (first_logs, first_test):
        if path.exists():
            first_set |= {json.loads(line)["messages"][0]["content"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    all_train = [q for topic in TOPICS for qs in TRAIN[topic].values() for q in qs]
    all_test = [q for topic in TOPICS for _, q in TEST[topic]]
    assert len(set(all_train)) == len(all_train) == N_TRAIN * len(TOPICS), "repeated or missing training question"
    assert len(set(all_test)) == len(all_test) == N_TEST * len(TOPICS), "repeated or missing test question"
    assert not set(all_train) & set(all_test), "a test question is in the logs"
    assert not (set(all_train) | set(all_test)) & first_set, "a question of the first example set"
    for topic in TOPICS:
        assert len(TRAIN[topic]) == 2 and all(len(v) == N_TRAIN // 2 for v in TRAIN[topic].values()), topic
        new_subjects = {s for s, _ in TEST[topic]} - set(TRAIN[topic])
        assert len(new_subjects) == 1, f"{topic}: the test set needs one subject the logs do not have"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the held-out evaluation logs and test queries.")
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where logs.jsonl and test.jsonl go (default: examples/heldout/)")
    parser.add_argument("--reuse-answers", type=Path, metavar="LOGS_JSONL",
                        help="take the logged answers from an earlier logs.jsonl (same ids and questions) instead of "
                             "generating them; for editing the reactions without waiting for the model")
    args = parser.parse_args(argv)
    _validate_questions()

    rows = [(topic, subject, q) for topic in TOPICS for subject, qs in TRAIN[topic].items() for q in qs]
    ids = []
    for topic in TOPICS:
        ids += [f"heldout-{topic}-{i + 1:03d}" for i in range(N_TRAIN)]
    t0 = time.perf_counter()
    if args.reuse_answers:
        old = {}
        for line in args.reuse_answers.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                old[r["id"]] = (r["messages"][0]["content"], r["messages"][1]["content"])
        answers = []
        for rid, (_, _, q) in zip(ids, rows):
            if rid not in old or old[rid][0] != q:
                parser.error(f"{args.reuse_answers} has no answer for {rid} with the question {q!r}; rerun without --reuse-answers")
            answers.append(old[rid][1])
    else:
        answers = generate_answers([q for _, _, q in rows])
    elapsed = time.perf_counter() - t0

    used = {u: 0 for u in USER_IDS}
    roles: dict[str, str] = {}
    records = []
    for k, topic in enumerate(TOPICS):
        rng = random.Random(f"{SEED}-{topic}")
        ans = answers[N_TRAIN * k : N_TRAIN * (k + 1)]
        if topic == "inconsistent":
            records += inconsistent_records(TRAIN[topic], ans, rng, used, roles)
        else:
            records += want_records(topic, TRAIN[topic], ans, rng, used, roles)
    write_jsonl(args.out_dir / "logs.jsonl", records)
    write_jsonl(args.out_dir / "test.jsonl", test_records())

    print(f"wrote {len(records)} logs and {len(test_records())} test queries to {args.out_dir} "
          f"({'answers reused' if args.reuse_answers else 'model load + generation'}: {elapsed:.0f} s)")
    print(summary(records, roles))
    return 0


def summary(records: list[dict], roles: dict[str, str]) -> str:
    """Per topic: the reactions (from the generator's plan), and how many logged answers and edits
    pass the topic's check (computed with checks.py)."""
    lines = [f"  {'topic':14s} {'base':>6s} {'edits':>5s} {'pass':>6s} {'want-user edits pass':>20s} "
             f"{'complaint':>9s} {'rating':>6s} {'approve':>7s} {'contra':>6s}"]
    for topic in TOPICS:
        item = {"metadata": {"topic": topic}}
        recs = [r for r in records if r["metadata"]["topic"] == topic]
        count = {k: sum(roles[r["id"]] == k for r in recs) for k in set(roles.values())}
        base = sum(check(item, r["messages"][1]["content"]) for r in recs)
        edits = [(roles[r["id"]], r["feedback"]["edited_response"]) for r in recs if r.get("feedback", {}).get("edited_response")]
        ok = sum(check(item, e) for _, e in edits)
        want = [e for role, e in edits if role in ("edit", "edit-miss")]
        want_ok = sum(check(item, e) for e in want)
        contra = count.get("contradict", 0) + count.get("contradict-edit", 0)
        lines.append(f"  {topic:14s} {base:>3d}/{len(recs):<2d} {len(edits):>5d} {ok:>3d}/{len(edits):<2d} "
                     f"{(f'{want_ok}/{len(want)}' if topic != 'inconsistent' else '-'):>20s} {count.get('complaint', 0):>9d} "
                     f"{count.get('thumbs-down', 0) + count.get('rating-only', 0):>6d} {count.get('approve', 0):>7d} {contra:>6d}")
    lines.append("  (base: logged answers passing the topic's check; pass: edits passing it; complaint: complaint only, "
                 "no edit; rating: a bare rating, no text; contra: users asking for the opposite of the want)")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
