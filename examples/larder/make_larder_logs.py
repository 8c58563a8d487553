""".venv/bin/python examples/larder/make_larder_logs.py [--reuse-answers examples/larder/logs.jsonl] [--limit N]

Writes the eighth evaluation-only set: `examples/larder/logs.jsonl` (110 user logs, 22 per topic)
and `examples/larder/test.jsonl` (12 test queries per topic, none of them a logged question). It is
kept sealed for one final evaluation: never tune anything on it. The topics and their checks
(`examples/larder/checks.py`) were committed before this script generated anything.

How the procedure differs from the seven earlier generators (`examples/make_example_logs.py`,
`examples/heldout/`, `examples/unseen/`, `examples/sealed/`, `examples/reserve/`, `examples/vault/`,
`examples/cellar/`):

- Wants and subjects are new: a last line `Time needed: N minutes` (crochet, PC building); short
  sentences, at most 12 words each (houseplants, taxes); the answer as `Q:` / `A:` lines and nothing
  else (electric cars, passports); a `Pros:` line and a `Cons:` line (mortgages, remote work);
  inconsistent (poetry, sharks). The test set adds a third, unlogged subject per topic (candle
  making, dental care, allergies, freelancing, chocolate).
- Questions come in seven styles, mixed in every topic: after the chatbot's own greeting, search
  keywords, an argument to settle ("Settle this: ... Who's right?"), a follow-up on earlier advice
  that is not in the log ("Earlier you said ..."), a rushed one ("ASAP: ..."), two user turns in a
  row (a short opener, then the question), and a what-if ("What happens if ...?").
- Decoding: on-policy answers of the embedded SmolLM2-135M-Instruct (`uno_graph.models.load_model`,
  the conversation through the chat template), sampled with locally typical sampling: temperature
  0.7, typical_p 0.9, top_k and top_p off, repetition_penalty 1.1, max_new_tokens 144, one prompt at
  a time with its own seed (`torch.manual_seed(sha256("larder:<topic>:<question>")[:14])`), on one
  thread. An answer that hit the token limit is cut back to its last complete sentence, and a
  lead-in line left dangling at its end (ending with ':') goes too.
- Logs arrive in topic waves: each topic has a peak somewhere in the file and its logs gather
  around it (a seeded normal spread), so the file opens with mostly one or two topics and the mix
  drifts. Users have ids like `priya.57`. Per want topic five recurring want users with one habit
  each: `silent` (edits every answer, never says a word), `explainer` (says why in a follow-up turn
  on every log, edits half of them), `grader` (rates every log, types the want into the comment on
  half, edits half), `shifter` (three logs, the want said once in a turn, once in the comment and
  once by an edit, each time in other words) and `lukewarm` (mild ratings of 0.5 or 1 on answers
  that miss, one edit of their own); one `contrarian` who wants the opposite and two one-off users.
  Exactly half of the logs (11 per topic) carry an edited answer; 3 of each want topic's 10
  want-aimed edits miss the check, in ways no earlier set used. `inconsistent` is written by six
  users in three opposed pairs of tastes (an example / no examples, warm / dry, steps / prose), who
  on one log in five react in the opposite taste.

Deterministic: one seed per prompt and one thread; two runs give identical files.
`--reuse-answers OLD_LOGS` takes the logged answers from an earlier logs.jsonl (matched by topic and
question) and skips the model; `--answers-out FILE` saves the sampled answers in a file it reads.
`--limit N` samples N of the questions only, prints them and writes nothing (a dry run of the
decoding; each answer is the one the full run logs, since every prompt has its own seed).
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

from checks import check, sentences as check_sentences  # noqa: E402  (examples/larder/checks.py)

SEED = "larder-v1"
MAX_NEW_TOKENS = 144
TEMPERATURE = 0.7
TYPICAL_P = 0.9
REPETITION_PENALTY = 1.1
N_TRAIN = 22
N_TEST = 12
N_EDITS = 11  # per topic: exactly half of the logs carry an edit
N_MISSES = 3  # per want topic: want-aimed edits that miss the check

TOPICS = ["time-needed", "short-sentences", "q-and-a", "pros-cons", "inconsistent"]
WANT_TOPICS = TOPICS[:4]
STYLES = ["greeted", "keywords", "dispute", "callback", "rushed", "two-turn", "what-if"]
G, K, D, C, R, T, W = STYLES  # short names for the tables below
TRAIN_MIX = {G: 3, K: 3, D: 3, C: 3, R: 3, T: 4, W: 3}  # per topic, 22 logs
TEST_MIX = {G: 2, K: 2, D: 2, C: 2, R: 1, T: 2, W: 1}  # per topic, 12 items


class Ask(NamedTuple):
    """A question, its style, the opener turn before it (`two-turn` only), and what a user who edits
    the answer adds for it: the minutes (`time-needed`), the FAQ's first question (`q-and-a`), or the
    pros and the cons (`pros-cons`)."""

    style: str
    question: str
    extra: object = None
    opener: str | None = None


# ---------------------------------------------------------------------------------------------
# Questions: per topic two subjects of 11 logged questions each.
# ---------------------------------------------------------------------------------------------

TRAIN: dict[str, dict[str, list[Ask]]] = {
    "time-needed": {
        "crochet": [
            Ask(G, "How do I crochet a granny square?", 40),
            Ask(G, "How do I change colours in the middle of a row?", 10),
            Ask(K, "magic ring crochet beginner", 10),
            Ask(D, "Settle this: my aunt says you must block every crochet piece, I say only lace. Who's right?", 30),
            Ask(D, "Quick debate: my friend thinks acrylic yarn is fine for baby blankets, I think only cotton. Which is it?", 5),
            Ask(C, "Earlier you said to count my stitches every row. Why does my blanket keep getting wider?", 20),
            Ask(R, "ASAP: I dropped a stitch three rows back, how do I fix it without unravelling everything?", 15),
            Ask(R, "Emergency: my yarn ran out two rows before the end of the scarf, what do I do?", 25),
            Ask(T, "How do I weave in the ends so they don't come loose?", 15, "Crochet question."),
            Ask(T, "How do I stuff it so it doesn't look lumpy?", 20, "I'm making my first amigurumi."),
            Ask(W, "What if I use a bigger hook than the pattern says?", 5),
        ],
        "pc-building": [
            Ask(G, "How do I apply thermal paste to a CPU?", 10),
            Ask(K, "install ram slots dual channel", 5),
            Ask(K, "first boot no display fix", 30),
            Ask(D, "Settle an argument: my brother says you need an anti-static wrist strap, I say touching the case is enough. Who's right?", 2),
            Ask(C, "You mentioned cable management. How do I route the cables behind the motherboard tray?", 45),
            Ask(C, "Following up on what you said about the BIOS, how do I turn on the XMP profile?", 10),
            Ask(R, "Need this fast: my new PC turns on but the fans stop after a second, what's wrong?", 30),
            Ask(T, "In what order should I put the parts in?", 180, "Building my first PC this weekend."),
            Ask(T, "How do I mount the motherboard in the case?", 20, "ok so my parts just arrived"),
            Ask(W, "What if I install the CPU cooler the wrong way round?", 15),
            Ask(W, "What happens if I plug the power supply cable into the wrong slot?", 10),
        ],
    },
    "short-sentences": {
        "houseplants": [
            Ask(G, "Why are the leaves on my monstera turning yellow?"),
            Ask(G, "How often should I water a snake plant?"),
            Ask(K, "fungus gnats soil fix"),
            Ask(D, "Settle this: my mum says you should mist ferns every day, I say it does nothing. Who's right?"),
            Ask(D, "Quick debate: my partner thinks plants need repotting every spring, I think only when root-bound. Which is it?"),
            Ask(C, "Earlier you said to give my fiddle leaf fig more light. Why is it dropping leaves now?"),
            Ask(R, "ASAP: my cat just chewed a peace lily leaf, is she in danger?"),
            Ask(R, "Right now: I see white fluffy spots on my succulent, what are they?"),
            Ask(T, "Where in the flat should I put it?", None, "I just got a pothos."),
            Ask(T, "Is tap water okay for my calathea?", None, "Houseplant question."),
            Ask(W, "What if I go on holiday for three weeks, will my plants survive?"),
        ],
        "taxes": [
            Ask(G, "What's the difference between a tax credit and a tax deduction?"),
            Ask(K, "self employed quarterly estimated tax"),
            Ask(K, "home office deduction rules"),
            Ask(D, "Settle an argument: my friend says a refund means you overpaid, I say it's free money. Who's right?"),
            Ask(C, "You mentioned keeping receipts. How long do I actually have to keep them?"),
            Ask(C, "Following up on what you said about tax brackets, does a raise ever lower my take-home pay?"),
            Ask(R, "Emergency: the filing deadline is tomorrow and I'm missing a form, what do I do?"),
            Ask(T, "Do I need to report money from selling things online?", None, "Doing my taxes for the first time."),
            Ask(T, "Do I have to pay tax on that income?", None, "so I started selling cakes at the market this year"),
            Ask(W, "What if I file my tax return a week late?"),
            Ask(W, "What happens if I make a mistake on my tax return?"),
        ],
    },
    "q-and-a": {
        "electric-cars": [
            Ask(G, "How long does it take to charge an electric car at home?", "How long does a home charge take?"),
            Ask(G, "Do electric cars lose range in cold weather?", "Do EVs lose range in the cold?"),
            Ask(K, "ev battery replacement cost", "How much does a new EV battery cost?"),
            Ask(D, "Settle this: my dad says electric cars are worse for the planet because of the batteries, I say they're better. Who's right?",
                "Are electric cars really better for the planet?"),
            Ask(D, "Quick debate: my neighbour thinks you should charge to 100% every night, I think 80%. Which is it?",
                "Should I charge to 100% or to 80%?"),
            Ask(C, "Earlier you said regenerative braking saves energy. How do I drive to use it best?",
                "How do I make the most of regenerative braking?"),
            Ask(R, "ASAP: my electric car says 5% battery and the next charger is 20 km away, what do I do?",
                "What do I do when the battery is almost empty?"),
            Ask(R, "Emergency: the charging cable is stuck in my car and won't come out, how do I release it?",
                "How do I release a stuck charging cable?"),
            Ask(T, "Is a used electric car a good idea?", "Is a used EV a good idea?", "Thinking about buying an EV."),
            Ask(T, "Can we still own an electric car?", "Can I own an EV with only street parking?", "we only have street parking"),
            Ask(W, "What if the power goes out while my car is charging?", "What happens if the power cuts out mid-charge?"),
        ],
        "passports": [
            Ask(G, "How early should I renew my passport before a trip?", "When should I renew my passport?"),
            Ask(K, "passport photo requirements glasses", "Can I wear glasses in my passport photo?"),
            Ask(K, "lost passport abroad embassy", "What do I do if I lose my passport abroad?"),
            Ask(D, "Settle an argument: my wife says you need six months left on a passport to travel, I say any valid one works. Who's right?",
                "Do I need six months left on my passport?"),
            Ask(C, "You mentioned the expedited service. How much faster is it really?", "How fast is the expedited service?"),
            Ask(C, "Following up on what you said about passport cards, can I fly with one?", "Can I fly with a passport card?"),
            Ask(R, "Need this fast: my flight is in three days and my passport expired, is there any way to travel?",
                "Can I get a passport in three days?"),
            Ask(T, "Does she need her own passport to fly abroad?", "Does a toddler need her own passport?", "My daughter is two."),
            Ask(T, "Can I travel if my passport is damaged a little?", "Can I travel on a slightly damaged passport?", "passport question"),
            Ask(W, "What if my name on the passport doesn't match my ticket?", "What if my ticket and passport names differ?"),
            Ask(W, "What happens if I find my old passport after reporting it lost?", "What if I find a passport I reported lost?"),
        ],
    },
    "pros-cons": {
        "mortgages": [
            Ask(G, "Should I get a fixed or a variable rate mortgage?",
                ("the payment never changes, so budgeting is easy", "the rate usually starts higher and leaving early costs fees")),
            Ask(G, "Is it worth paying extra off my mortgage each month?",
                ("less interest overall and you own the house sooner", "that money is locked in the house, not in your emergency fund")),
            Ask(K, "mortgage broker vs bank",
                ("a broker compares many lenders for you", "some brokers charge a fee or lean towards certain lenders")),
            Ask(D, "Settle this: my dad says a 15-year mortgage is always smarter, I say a 30-year one gives more room. Who's right?",
                ("a 15-year term costs far less interest", "the monthly payment is much higher")),
            Ask(D, "Quick debate: my friend thinks you should never put less than 20% down, I think 10% is fine. Which is it?",
                ("10% down gets you into a home sooner", "you may pay mortgage insurance and a higher rate")),
            Ask(C, "Earlier you said refinancing can save money. When is it not worth it?",
                ("a lower rate can cut your monthly payment", "closing costs can eat the savings if you move soon")),
            Ask(R, "ASAP: the lender wants an answer today on locking my rate, should I lock it?",
                ("locking protects you if rates rise", "you miss out if rates fall before closing")),
            Ask(R, "Emergency: I might miss a mortgage payment this month, what are my options?",
                ("calling the lender early opens up payment plans", "a late payment can still hurt your credit")),
            Ask(T, "Should we use an offset account?", ("your savings cut the interest you pay", "the rate is often a little higher"),
                "We're buying our first home."),
            Ask(T, "Should I stay with my bank or switch lenders?", ("switching can get you a better rate", "switching takes time and costs fees"),
                "mortgage renewal coming up"),
            Ask(W, "What if interest rates go up right after I buy?",
                ("a fixed rate shields you from the rise", "on a variable rate your payments grow")),
        ],
        "remote-work": [
            Ask(G, "Is it better to work from home or go into the office?",
                ("no commute and more time to focus", "fewer chats with colleagues, and work and home blur")),
            Ask(K, "home office desk setup ergonomic",
                ("a good chair and the screen at eye height save your back", "the kit costs money up front")),
            Ask(K, "asking boss for remote work",
                ("you can point to your results", "some bosses worry they will lose track of the team")),
            Ask(D, "Settle an argument: my colleague says you're more productive at home, I say at the office. Who's right?",
                ("home has fewer interruptions", "the office makes quick questions easier")),
            Ask(C, "You mentioned co-working spaces. Are they worth the money?",
                ("a real desk and people around you", "a monthly fee and a commute again")),
            Ask(C, "Following up on what you said about a routine, should I get dressed for work at home?",
                ("it puts you in work mode", "it is one more thing to do in the morning")),
            Ask(R, "Need this fast: my manager wants us back in the office full time, should I push back?",
                ("you might keep the flexibility you value", "it can strain things with your manager")),
            Ask(T, "Should I move somewhere cheaper?", ("lower rent and more space", "far from friends, and a return-to-office order would hurt"),
                "I've been remote for a year now."),
            Ask(T, "Should I work from a café some days?", ("a change of scene and people around you", "noise, patchy wifi and no privacy for calls"),
                "new job is fully remote"),
            Ask(W, "What if I took a remote job in a different time zone?",
                ("quiet hours to focus", "calls early in the morning or late at night")),
            Ask(W, "What happens if my internet goes down on a workday?",
                ("a phone hotspot keeps you going", "it eats your data and can be slow")),
        ],
    },
    "inconsistent": {
        "poetry": [
            Ask(G, "What makes a poem a sonnet?"),
            Ask(G, "How do I start writing poetry?"),
            Ask(K, "haiku syllables rules"),
            Ask(D, "Settle this: my teacher says poems have to rhyme, I say free verse counts. Who's right?"),
            Ask(D, "Quick debate: my friend thinks you should read poetry out loud, I think silently is fine. Which is it?"),
            Ask(C, "Earlier you said to read a lot of poems. Which poets should I start with?"),
            Ask(R, "ASAP: I have to read a poem at a funeral tomorrow, how do I choose one?"),
            Ask(R, "Right now: I'm stuck on the last line of my poem, how do I end it?"),
            Ask(T, "Is that the same thing as poetry?", None, "I write song lyrics."),
            Ask(T, "What does iambic pentameter mean?", None, "poetry question"),
            Ask(W, "What if I break the rules of a form on purpose?"),
        ],
        "sharks": [
            Ask(G, "How do sharks find their prey?"),
            Ask(K, "great white shark lifespan"),
            Ask(K, "shark attack statistics beaches"),
            Ask(D, "Settle an argument: my son says sharks are fish, my daughter says they're mammals. Who's right?"),
            Ask(C, "You mentioned that sharks never stop swimming. Do they sleep?"),
            Ask(C, "Following up on what you said about shark teeth, how many do they lose?"),
            Ask(R, "Emergency: someone just shouted shark at the beach, what should I do in the water?"),
            Ask(T, "Are reef sharks dangerous to people?", None, "We're going snorkelling next week."),
            Ask(T, "Why do some sharks glow in the dark?", None, "watching a shark documentary"),
            Ask(W, "What if sharks went extinct?"),
            Ask(W, "What happens if a shark stops swimming?"),
        ],
    },
}

# Test queries: (subject, Ask). Four on each logged subject, four on a subject no log mentions.
TEST: dict[str, list[tuple[str, Ask]]] = {
    "time-needed": [
        ("crochet", Ask(G, "How do I crochet a simple dishcloth?")),
        ("crochet", Ask(K, "single crochet vs half double")),
        ("crochet", Ask(D, "Settle this: my sister says you should hold the yarn in your left hand, I say it doesn't matter. Who's right?")),
        ("crochet", Ask(T, "How do I make a simple bookmark?", None, "I want to crochet a gift.")),
        ("pc-building", Ask(G, "How do I install an SSD in my PC?")),
        ("pc-building", Ask(C, "Earlier you said to update the BIOS. How do I do it safely?")),
        ("pc-building", Ask(R, "ASAP: my PC shuts off as soon as I start a game, what do I check first?")),
        ("pc-building", Ask(T, "How do I swap out the old one?", None, "Upgrading my graphics card.")),
        ("candle-making", Ask(K, "soy wax candle tunneling")),
        ("candle-making", Ask(D, "Quick debate: my friend thinks you must use a double boiler for wax, I think a microwave is fine. Which is it?")),
        ("candle-making", Ask(C, "You mentioned choosing the right wick size. How do I know which one to buy?")),
        ("candle-making", Ask(W, "What if I add too much fragrance oil to my candle?")),
    ],
    "short-sentences": [
        ("houseplants", Ask(G, "Can I put my orchid in a window that gets morning sun?")),
        ("houseplants", Ask(K, "repotting rootbound spider plant")),
        ("houseplants", Ask(D, "Settle an argument: my roommate says coffee grounds are good plant food, I say they hurt. Who's right?")),
        ("houseplants", Ask(T, "Is it getting too much sun?", None, "My aloe is going brown.")),
        ("taxes", Ask(G, "Do I have to file a tax return if I earned very little?")),
        ("taxes", Ask(C, "Following up on what you said about deductions, can I deduct my phone bill?")),
        ("taxes", Ask(R, "Emergency: I just got a letter from the tax office, what does an audit involve?")),
        ("taxes", Ask(T, "Should we file jointly or separately?", None, "I got married this year.")),
        ("dental-care", Ask(K, "electric toothbrush vs manual")),
        ("dental-care", Ask(D, "Settle this: my husband says you should brush right after breakfast, I say wait an hour. Who's right?")),
        ("dental-care", Ask(C, "Earlier you said to floss every day. Does it matter if I floss before or after brushing?")),
        ("dental-care", Ask(W, "What if I skip my dental check-up for two years?")),
    ],
    "q-and-a": [
        ("electric-cars", Ask(G, "How long do electric car batteries last?")),
        ("electric-cars", Ask(K, "home ev charger installation cost")),
        ("electric-cars", Ask(D, "Quick debate: my brother says hybrids are the smart middle ground, I say go fully electric. Which is it?")),
        ("electric-cars", Ask(T, "Would an electric car work for me?", None, "I drive 100 km a day.")),
        ("passports", Ask(G, "How do I get a passport for the first time?")),
        ("passports", Ask(C, "You mentioned checking the entry rules. Where do I find a country's passport requirements?")),
        ("passports", Ask(R, "Need this fast: I left my passport in a taxi, what should I do?")),
        ("passports", Ask(T, "Do I need a new passport?", None, "I changed my name when I got married.")),
        ("allergies", Ask(K, "seasonal allergies antihistamine drowsy")),
        ("allergies", Ask(D, "Settle an argument: my aunt says local honey cures hay fever, I say it's a myth. Who's right?")),
        ("allergies", Ask(C, "Following up on what you said about pollen counts, when in the day are they highest?")),
        ("allergies", Ask(W, "What if I'm allergic to my new cat?")),
    ],
    "pros-cons": [
        ("mortgages", Ask(G, "Should I use my savings for a bigger down payment?")),
        ("mortgages", Ask(K, "interest only mortgage")),
        ("mortgages", Ask(D, "Settle this: my sister says renting is throwing money away, I say buying isn't always better. Who's right?")),
        ("mortgages", Ask(T, "Should we fix again or go variable?", None, "Our fixed rate ends next month.")),
        ("remote-work", Ask(G, "Should I take a hybrid job or a fully remote one?")),
        ("remote-work", Ask(C, "Earlier you said to set clear work hours. Should I turn off notifications after hours?")),
        ("remote-work", Ask(R, "Right now: my company offers a remote-work allowance or a pay rise, which should I take?")),
        ("remote-work", Ask(T, "Should we have a daily video call?", None, "My team is spread across three countries.")),
        ("freelancing", Ask(K, "freelance vs full time salary")),
        ("freelancing", Ask(D, "Quick debate: my friend thinks freelancers should charge by the hour, I think by the project. Which is it?")),
        ("freelancing", Ask(C, "You mentioned having a contract. Should I ask clients for a deposit up front?")),
        ("freelancing", Ask(W, "What if I quit my job to freelance full time?")),
    ],
    "inconsistent": [
        ("poetry", Ask(G, "How do I find a poem that suits a wedding?")),
        ("poetry", Ask(K, "slam poetry performance tips")),
        ("poetry", Ask(D, "Settle an argument: my friend says song lyrics are poems, I say they aren't. Who's right?")),
        ("poetry", Ask(T, "Why is it so hard to follow?", None, "I'm reading The Waste Land.")),
        ("sharks", Ask(G, "How big do whale sharks get?")),
        ("sharks", Ask(C, "You mentioned that sharks have electroreceptors. How do those work?")),
        ("sharks", Ask(R, "ASAP: my kid got bumped by a small shark while swimming, should we see a doctor?")),
        ("sharks", Ask(T, "How do they keep sharks healthy in captivity?", None, "Our aquarium just got a shark tank.")),
        ("chocolate", Ask(K, "dark chocolate caffeine amount")),
        ("chocolate", Ask(D, "Quick debate: my brother says white chocolate isn't real chocolate, I say it is. Which is it?")),
        ("chocolate", Ask(C, "Earlier you said to temper chocolate for a shiny finish. How do I do that at home?")),
        ("chocolate", Ask(W, "What if my dog eats a bit of chocolate?")),
    ],
}

# The chatbot's own opening line, before a `greeted` question (one per question, from its hash).
GREETINGS = [
    "Hi there! How can I help?",
    "Hello! What would you like to ask today?",
    "Good day. What can I do for you?",
    "Hey! Ask away.",
    "Hi, I'm here to help. What's up?",
]
RUSHED_OPENERS = ("ASAP:", "Emergency:", "Need this fast:", "Right now:")
CALLBACK_OPENERS = ("Earlier you said", "You mentioned", "Following up on what you said")
DISPUTE_OPENERS = ("Settle this:", "Settle an argument:", "Quick debate:")
WHAT_IF_OPENERS = ("What if", "What happens if")


def prompt_turns(ask: Ask) -> list[dict]:
    """The conversation up to the question: a `greeted` question comes after the chatbot's greeting,
    a `two-turn` one after the user's own opener turn."""
    if ask.style == G:
        h = int(hashlib.sha256(f"{SEED}-greeting:{ask.question}".encode()).hexdigest(), 16)
        return [{"role": "assistant", "content": GREETINGS[h % len(GREETINGS)]}, {"role": "user", "content": ask.question}]
    if ask.style == T:
        return [{"role": "user", "content": ask.opener}, {"role": "user", "content": ask.question}]
    return [{"role": "user", "content": ask.question}]


# ---------------------------------------------------------------------------------------------
# Users.
# ---------------------------------------------------------------------------------------------

HABITS = ["silent", "explainer", "grader", "shifter", "lukewarm"]
HABIT_SHARE = {"silent": 4, "explainer": 4, "grader": 4, "shifter": 3, "lukewarm": 3}  # 18 of 22 logs
HABIT_EDITS = {"silent": 4, "explainer": 2, "grader": 2, "shifter": 1, "lukewarm": 1}  # 10 want-aimed edits
MISS_WEIGHT = {"silent": 0.25, "explainer": 0.25, "grader": 0.3, "shifter": 0.5, "lukewarm": 0.3}
CONTRA_SHARE = 2  # one recurring contrarian per want topic, one edit
N_DRIVE_BY = 2  # one-off users per want topic
TASTES = ["example", "no-example", "warm", "dry", "steps", "prose"]
OPPOSITE = {"example": "no-example", "no-example": "example", "warm": "dry", "dry": "warm", "steps": "prose",
            "prose": "steps"}
TASTE_SHARE = [4, 4, 4, 3, 4, 3]
MOOD_RATE = 0.2  # share of an inconsistent user's logs reacting in the opposite taste

_NAMES = ["priya", "tom", "ines", "kofi", "mei", "lars", "ana", "yusuf", "chloe", "raj", "olga", "ben", "sara", "dev",
          "nina", "omar", "lucy", "tariq", "eva", "jun", "maya", "piet", "zoe", "ali", "hana", "sam", "leah", "ivan",
          "rosa", "kai", "nora", "felix", "amara", "theo", "lina", "marco", "ruth", "sven", "dina", "hugo"]


def _uid(name: str) -> str:
    """A user id like `priya.57`: a first name and two digits, from a hash of the user's role."""
    h = int(hashlib.sha256(f"{SEED}:{name}".encode()).hexdigest(), 16)
    return f"{_NAMES[h % len(_NAMES)]}.{(h >> 8) % 90 + 10}"


WANT_USERS = {topic: {habit: _uid(f"{topic}/{habit}") for habit in HABITS} for topic in WANT_TOPICS}
HABIT = {uid: habit for users in WANT_USERS.values() for habit, uid in users.items()}
CONTRA = {topic: _uid(f"{topic}/contrarian") for topic in WANT_TOPICS}
DRIVE_BY_USERS = {topic: [_uid(f"{topic}/one-off/{k}") for k in range(N_DRIVE_BY)] for topic in WANT_TOPICS}
TASTE_USERS = {taste: _uid(f"taste/{taste}") for taste in TASTES}
TASTE = {uid: taste for taste, uid in TASTE_USERS.items()}
ALL_USERS = (list(HABIT) + list(CONTRA.values()) + [u for us in DRIVE_BY_USERS.values() for u in us]
             + list(TASTE))


def _voices() -> dict[str, dict]:
    """How each user types: all lowercase or not, the final full stop dropped, 'thx' at the end now
    and then, a 🙏 now and then."""
    rng = random.Random(f"{SEED}-voices")
    return {uid: {"lower": rng.random() < 0.3, "nostop": rng.random() < 0.35, "thx": rng.random() < 0.2,
                  "emoji": rng.random() < 0.15}
            for uid in sorted(ALL_USERS)}


VOICES = _voices()


def voiced(user: str, text: str, rng: random.Random) -> str:
    """A user's turn or comment in their voice (the wording itself unchanged in meaning)."""
    v = VOICES[user]
    if v["nostop"] and text.endswith("."):
        text = text[:-1]
    if v["lower"]:
        text = text.lower()
    if v["thx"] and rng.random() < 0.5:
        text += " thx"
    if v["emoji"] and rng.random() < 0.5:
        text += " 🙏"
    return text.strip()


# The want in words: nine phrasings per topic, six that name the form and three that do not (the
# last three). Each user who speaks has their own (PHRASINGS_OF): no two users share one.
WANT_PHRASES = {
    "time-needed": [
        "Please end with a line like 'Time needed: 30 minutes'.",
        "Finish with how long it takes, as 'Time needed: X minutes'.",
        "Last line: Time needed, in minutes.",
        "Add a 'Time needed:' line at the very end, minutes only.",
        "Give me the total time at the bottom, in minutes, one number.",
        "Could you put how many minutes it takes on the last line?",
        "I do these in my lunch break, I need to know if it fits.",
        "How long is this going to take me? You never say.",
        "I have to plan my evening around this.",
    ],
    "short-sentences": [
        "Shorter sentences please. Twelve words max.",
        "Keep every sentence short, no long ones.",
        "Use short sentences, one idea each.",
        "Break those long sentences up.",
        "Write it in short, simple sentences.",
        "No sentence longer than a dozen words, please.",
        "I'm dyslexic and these long sentences lose me.",
        "I read this on my phone on the bus, it's exhausting.",
        "I'm reading this out to my grandad and he can't follow it.",
    ],
    "q-and-a": [
        "Can you write it as Q: and A: lines?",
        "Make it a little FAQ, question then answer.",
        "Format it as questions and answers, Q: then A:.",
        "Just Q: / A: pairs, nothing else, please.",
        "Give me two or three Q&A pairs instead.",
        "Turn it into a mini FAQ with Q: and A:.",
        "I'm putting this on our club's help page.",
        "I want to skim for my question, not read an essay.",
        "My students quiz each other with these.",
    ],
    "pros-cons": [
        "Give me a Pros: line and a Cons: line.",
        "List the pros and the cons, one line each.",
        "Add 'Pros:' and then 'Cons:' so I can weigh it.",
        "Spell out the upsides and downsides, Pros: then Cons:.",
        "Pros on one line, cons on the next, please.",
        "Can you put the pros and cons on their own lines?",
        "I need to weigh this up, not just be told.",
        "What's the catch? You only sold me one side.",
        "I'm deciding this with my partner tonight, we need both sides.",
    ],
}
# explainer: (named, indirect); grader: two named; shifter: three (two named, one indirect);
# lukewarm: (named, indirect). The silent user never says it.
PHRASINGS_OF = {"explainer": (0, 6), "grader": (1, 2), "shifter": (3, 4, 7), "lukewarm": (5, 8)}
SHIFTER_NOTES = ["like this", "see my version", "this is what I meant"]
LUKEWARM_EDIT_TURN = {
    "time-needed": "Fine. I added the time at the bottom myself.",
    "short-sentences": "Fine. I chopped the long sentences up myself.",
    "q-and-a": "Fine. I turned it into Q and A myself.",
    "pros-cons": "Fine. I added the pros and cons myself.",
}
LUKEWARM_UP = ["fine", "ok, good enough", "decent", "works"]
CONTRA_ASK = {
    "time-needed": "Please don't tell me how long it takes, it just stresses me out.",
    "short-sentences": "I like a proper flowing explanation, not choppy little sentences.",
    "q-and-a": "Just answer me normally, no FAQ format.",
    "pros-cons": "Don't give me pros and cons, just tell me what you'd do.",
}
CONTRA_PRAISE = {
    "time-needed": "Good, no clock on it.",
    "short-sentences": "Nice, a proper explanation.",
    "q-and-a": "Good, a normal answer.",
    "pros-cons": "Thanks for just telling me.",
}
ONE_OFF = [
    ("Thanks, saved.", 1),
    ("Can you say that again in Spanish?", None),
    ("not what I asked", -1),
    ("interesting", None),
    (None, -0.5),
    ("who made you?", None),
    ("k", 0),
]
FOLLOW_UP_Q = {  # the further questions a user puts into a FAQ
    "electric-cars": ["Is it expensive?", "What should I watch out for?", "Does it depend on the car?",
                      "Anything else I should know?"],
    "passports": ["How long does that take?", "What does it cost?", "What should I bring?", "Anything else I should know?"],
}
FAQ_FALLBACK = {
    "electric-cars": "Check your car's manual, it has the details for your model.",
    "passports": "Check the official passport office website for the current rules.",
}
SHORT_FALLBACK = {  # short sentences a user adds when the answer gave them too little
    "houseplants": ["Check the soil with your finger first.", "Most plants like bright, indirect light.",
                    "Water less in winter.", "Yellow leaves often mean too much water.",
                    "Use a pot with a drainage hole.", "Turn the pot every few weeks for even growth.",
                    "Wipe dusty leaves with a damp cloth."],
    "taxes": ["Keep copies of everything you file.", "Check the deadline on the tax office website.",
              "A tax adviser can help with tricky cases.", "Do not guess the numbers.",
              "Keep your receipts in one folder.", "File early if you expect a refund.",
              "Ask the tax office when in doubt."],
}
TASTE_TURNS = {
    "example": ["Can you give me an example?", "An example would really help."],
    "no-example": ["Skip the examples, I get it.", "No examples needed, just the rule."],
    "warm": ["Bit cold, isn't it?", "You could be friendlier about it."],
    "dry": ["Less chatty please.", "Drop the cheerleading, just the facts."],
    "steps": ["Can you break it into steps?", "Put it as a list please."],
    "prose": ["Too listy. Just explain it.", "I don't want a list, write it out."],
}
TASTE_PRAISE = {"example": "Nice example, thanks.", "no-example": "Good, straight to the rule.",
                "warm": "Aw, thanks, lovely answer.", "dry": "Good, no fluff.", "steps": "Steps are perfect.",
                "prose": "Nice, reads well."}
OFF_TOPIC = ["Are you a bot?", "What time is it where you are?", "Can I change my username?"]
EXAMPLES = {
    "poetry": ["For example, Shakespeare's Sonnet 18 starts with 'Shall I compare thee to a summer's day?'",
               "For instance, a haiku by Basho describes an old pond and a frog jumping in.",
               "For example, Mary Oliver's 'Wild Geese' is short, plain and easy to read aloud."],
    "sharks": ["For example, a great white can smell a drop of blood in a large volume of water.",
               "For instance, hammerheads use their wide heads to sweep the sand for rays.",
               "For example, the lantern shark makes its own light on its belly."],
}
WARM_OPENERS = ["Great question! ", "Oh, I love this one. ", "Happy to help! "]
WARM_CLOSERS = [" Hope this helps, and enjoy!", " Good luck, you've got this!", " Have fun with it!"]

# ---------------------------------------------------------------------------------------------
# Text helpers.
# ---------------------------------------------------------------------------------------------

_ABBREV = r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\betc\.)(?<!\bvs\.)(?<!\bDr\.)(?<!\bMr\.)(?<!\bSt\.)"
_FILLER = re.compile(r"^\s*(Sure|Certainly|Absolutely|Of course|Great question|Good question|Ah|Oh|Hi|Hello)\b[^.!?:\n]*[.!?:]\s*")
_LABEL = re.compile(r"^[*_]*[A-Za-z][\w;'’-]*(?: [\w;'’-]+){0,2}:[*_]*\s*")
_LIST_LINE = re.compile(r"^\s*([-*•+]|\d+[.)])\s+(.*\S)")
_LEAD = re.compile(r"^(?:[-–—*•+>#|~`]+\s*|\d+[.)]\s+)+")
_FENCE_LINE = re.compile(r"^\s*(```|~~~)")
_EXAMPLE_WORDS = re.compile(r"\b(for example|for instance|e\.g\.|such as|like the)\b", re.I)
_WARM = re.compile(r"(!|\bhope\b|\bgreat\b|\bhappy to\b|\benjoy\b|\bgood luck\b)", re.I)
_SMALL = {"a", "an", "the", "to", "of", "and", "or", "in", "with", "for", "is", "are", "your", "that", "on", "at",
          "as", "by", "can", "be", "but", "if", "it", "you", "this", "from", "will", "so", "which", "more", "than"}
# Where a user breaks a long sentence into short ones.
_BREAKS = re.compile(r"\s*(?:;|:(?=\s)|\s[—–]\s|,\s+(?:and|but|so|or|which|because|while|since|although|though|then)\b"
                     r"|\s+(?:because|although|so that|which means|whereas)\b)\s*")


def plain(text: str) -> str:
    """Markdown marks removed: bold, code ticks, heading hashes, list and quote markers."""
    text = text.replace("**", "").replace("__", "").replace("`", "")
    text = re.sub(r"^\s*#+\s*", "", text, flags=re.MULTILINE)
    return re.sub(r"^\s*([-*•+>]|\d+[.)])\s+", "", text, flags=re.MULTILINE)


def unfenced(text: str) -> str:
    """The text with code blocks (and an unclosed one at the end) taken out."""
    out, fenced = [], False
    for line in text.splitlines():
        if _FENCE_LINE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return "\n".join(out)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def sentences(text: str) -> list[str]:
    """The answer's sentences (at least three words, ending with . ! or ?), code, filler openers and
    line labels left out."""
    out = []
    for line in plain(unfenced(text)).splitlines():
        for part in re.split(r"(?<=[.!?])" + _ABBREV + r"\s+", line.strip()):
            part = _LABEL.sub("", _LEAD.sub("", part.strip())).strip()
            if len(part.split()) >= 3 and part.endswith((".", "!", "?")) and not _FILLER.match(part):
                out.append(_cap(part))
    return out


def clip(sentence: str, n: int, end: str = ".") -> str:
    """At most `n` words of a sentence, without a dangling small word, ending with `end`."""
    words = sentence.split()
    if len(words) <= n:
        return sentence.strip()
    words = words[:n]
    while len(words) > 3 and words[-1].lower().strip(",;:") in _SMALL:
        words.pop()
    return " ".join(words).rstrip(",;:-(—– ") + end


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
        return clip(" ".join(plain(unfenced(text)).split()), max_words)
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
    while len(out) > 1 and (not out[-1].strip() or out[-1].rstrip().endswith(":")):  # a dangling lead-in
        out.pop()
    body = "\n".join(out).strip()
    if sum(bool(_FENCE_LINE.match(x)) for x in body.splitlines()) % 2:
        body += "\n```"
    if not body or len(body.split()) > max_words + 20:
        body = prose(text, max_words)
    return re.sub(r"\n{3,}", "\n\n", body)


def closed(text: str) -> str:
    """`text` with a code fence that the token limit left open closed."""
    text = text.strip()
    if sum(bool(_FENCE_LINE.match(line)) for line in text.splitlines()) % 2:
        text += "\n```"
    return text


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def trim_unfinished(text: str) -> str:
    """An answer cut by the token limit, cut back to its last complete sentence; a lead-in line left
    dangling at the end (one ending with ':') goes too. Kept whole when nothing would remain."""
    text = text.rstrip()
    ends = [m.end() for m in re.finditer(r"(?<![\d\s])[.!?](?=[\s\"'”’)]|$)", text)]
    if not ends:
        return text
    lines = text[: ends[-1]].rstrip().splitlines()
    while len(lines) > 1 and (not lines[-1].strip() or lines[-1].rstrip().endswith(":")):
        lines.pop()
    return "\n".join(lines).strip()


def _words(text: str) -> int:
    return len(text.split())


# ---------------------------------------------------------------------------------------------
# Edits of want users. mode "full": a rewrite of the answer's first part; "patch": the smallest
# change that adds the want. A planned miss is a plausible slip that fails the check; some passing
# edits are unusual. Each builder returns (text, kind).
# ---------------------------------------------------------------------------------------------


def _body(answer: str, mode: str, rng: random.Random) -> str:
    return closed(answer) if mode == "patch" else closed(body_lines(answer, rng.randint(40, 80)))


TIME_MISSES = ["about", "range", "mins", "min", "hours", "top", "reason", "bold", "capital-n", "time-label",
               "sign-off", "inline", "tilde", "estimated"]


def edit_time_needed(ask: Ask, answer: str, rng: random.Random, mode: str, miss: str | None) -> tuple[str, str]:
    n = int(ask.extra)
    body = _body(answer, mode, rng)
    line = f"Time needed: {n} minutes"
    if miss:
        if miss == "top":
            return f"{line}\n\n{body}", miss
        if miss == "sign-off":
            return f"{body}\n\n{line}\n\nHave fun!", miss
        if miss == "inline":
            paras = paragraphs(body)
            return "\n\n".join(paras[:-1] + [paras[-1] + f" {line}."]), miss
        if miss == "hours" and n < 60:
            miss = "about"
        wrong = {"about": f"Time needed: about {n} minutes", "range": f"Time needed: {n}-{n + max(5, n // 2)} minutes",
                 "mins": f"Time needed: {n} mins", "min": f"Time needed: {n} min", "hours": f"Time needed: {n / 60:g} hours",
                 "reason": f"Time needed: {n} minutes (longer the first time)", "bold": f"**Time needed:** {n} minutes",
                 "capital-n": f"Time Needed: {n} minutes", "time-label": f"Time: {n} minutes",
                 "tilde": f"Time needed: ~{n} minutes", "estimated": f"Estimated time: {n} minutes"}[miss]
        return f"{body}\n\n{wrong}", miss
    style = rng.random()
    if style < 0.15:
        return f"{body}\n\n{line}.", "full-stop"
    if style < 0.3:
        return f"{body}\n{line}", "no-blank"
    if style < 0.4:
        return f"{body}\n\n   {line}", "indented"
    return f"{body}\n\n{line}", "ok"


def _pieces(sentence: str, max_words: int = 12) -> list[str]:
    """A long sentence broken into short ones: at its semicolons, colons, dashes and joining words
    first, at its commas when a piece is still too long; a fragment of under four words goes back to
    its neighbour (after a comma) when the two fit, and a piece still too long is split in two (see
    `_halve`). Each piece ends with a full stop (the last one with the sentence's own '?' or '!')."""
    end = sentence.strip()[-1:] if sentence.strip().endswith(("!", "?")) else "."
    core = sentence.strip().rstrip(".!?")
    parts: list[str] = []
    for p in _BREAKS.split(core):
        p = p.strip(" ,.;:")
        if not p:
            continue
        parts += [x.strip(" ,") for x in re.split(r",\s+", p) if x.strip(" ,")] if _words(p) > max_words else [p]
    out: list[str] = []
    for p in parts:
        if out and (_words(p) < 4 or _words(out[-1]) < 4) and _words(out[-1]) + _words(p) <= max_words:
            out[-1] = f"{out[-1]}, {p}"
            continue
        out.append(p)
    short = [" ".join(w).rstrip(",;:-( ") for p in out if _words(p) >= 2 for w in _halve(p.split(), max_words)]
    short = [_cap(x) for x in short if x]
    return [p + ("." if k < len(short) - 1 else end) for k, p in enumerate(short)]


_JOINS = {"and", "but", "or", "so", "that", "which", "who", "when", "where", "while", "because", "if", "after", "before",
          "since", "until", "unless", "although", "whether"}
_PREPS = {"to", "in", "on", "for", "by", "with", "from", "at", "during", "through", "without", "into", "like"}
# Words a split never comes right after: 'the. Plant', 'may. Have', 'due. To' read badly.
_NO_SPLIT_AFTER = {"a", "an", "the", "may", "might", "can", "could", "will", "would", "should", "must", "to", "be", "been",
                   "have", "has", "had", "is", "are", "was", "were", "of", "your", "their", "its", "my", "our", "this",
                   "these", "those", "very", "more", "most", "due", "able", "going", "according", "not", "and", "or",
                   "but", "it's", "you're", "it", "you", "they", "we", "i"}


def _halve(words: list[str], max_words: int) -> list[list[str]]:
    """Words of a piece that is still too long, split (again and again) before a joining word
    ('and', 'that', 'when', 'because', ...) or else a preposition nearest to its middle, or else
    near the middle, never right after a word like 'the', 'may' or 'due'; a leading 'and', 'but',
    'or' or 'so' of the second half is dropped. No word is lost."""
    if len(words) <= max_words:
        return [words]
    mid = len(words) // 2
    ok = [k for k in range(3, len(words) - 2) if words[k - 1].lower().strip(",;()\"'") not in _NO_SPLIT_AFTER]
    word = lambda k: words[k].lower().strip(",;()\"'")  # noqa: E731
    for pool in ([k for k in ok if word(k) in _JOINS], [k for k in ok if word(k) in _PREPS], ok, list(range(3, len(words) - 2))):
        if pool:
            k = min(pool, key=lambda j: (abs(j - mid), j))
            break
    else:
        k = mid
    left, right = words[:k], words[k:]
    if len(right) > 3 and right[0].lower() in {"and", "but", "or", "so"}:
        right = right[1:]
    return _halve(left, max_words) + _halve(right, max_words)


def short_sentences(answer: str, subject: str, target: int) -> list[tuple[int, str]]:
    """The answer's sentences broken into short ones (at most 12 words), about `target` words of
    them, padded with the subject's own short sentences up to 30 words or more; each with the index
    of the answer's sentence it came from (-1 for the padding)."""
    out: list[tuple[int, str]] = []
    for i, s in enumerate(sentences(answer)):
        if _words(" ".join(p for _, p in out)) >= target:
            break
        out += [(i, p) for p in _pieces(s)]
    for extra in SHORT_FALLBACK[subject]:
        if _words(" ".join(p for _, p in out)) >= 32 and sum(_words(p) >= 3 for _, p in out) >= 4:
            break
        out.append((-1, extra))
    return out


def _short_patch(answer: str, subject: str) -> str:
    """The smallest fix: the answer's own lines kept (list markers too), code dropped, each sentence
    of more than 12 words broken into short ones in place."""
    lines = []
    for line in unfenced(closed(answer)).splitlines():
        if not line.strip():
            lines.append("")
            continue
        m = _LIST_LINE.match(line)
        marker, text = (m.group(1) + " ", m.group(2)) if m else ("", line.strip())
        text = re.sub(r"^#+\s*", "", text.replace("**", "").replace("`", ""))
        new: list[str] = []
        for p in re.split(r"(?<=[.!?])\s+", text):  # where the check ends a sentence
            if p.strip():
                new += _pieces(p) if _words(p) > 12 else [p]
        if new:
            lines.append(marker + " ".join(new))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    for extra in SHORT_FALLBACK[subject]:
        if sum(map(len, check_sentences(text))) >= 32 and sum(len(x) >= 3 for x in check_sentences(text)) >= 3:
            break
        text = f"{text}\n\n{extra}".strip()
    return text


SHORT_MISSES = ["one-long", "semicolons", "comma-join", "too-short", "long-list-line"]


def edit_short_sentences(ask: Ask, answer: str, rng: random.Random, mode: str, miss: str | None,
                         subject: str) -> tuple[str, str]:
    if mode == "patch" and not miss:
        return _short_patch(answer, subject), "in-place"
    sourced = short_sentences(answer, subject, rng.randint(40, 70))
    short = [p for _, p in sourced]
    if miss == "one-long":  # one long sentence of the answer left as it was
        sents = sentences(answer)
        longs = sorted({i for i, _ in sourced if i >= 0 and 14 <= _words(sents[i]) <= 30})
        if longs:
            keep, out = rng.choice(longs), []
            for i, p in sourced:
                if i != keep:
                    out.append(p)
                elif sents[keep] not in out:
                    out.append(sents[keep])
            return " ".join(out), miss
        miss = "semicolons"
    if miss == "semicolons":  # the short sentences glued back with semicolons
        glued = []
        for k in range(0, len(short), 3):
            trio = short[k:k + 3]
            glued.append("; ".join(x.rstrip(".")[0].lower() + x.rstrip(".")[1:] if j else x.rstrip(".")
                                   for j, x in enumerate(trio)) + ".")
        return " ".join(glued), miss
    if miss == "comma-join":
        k = max(range(len(short) - 1), key=lambda j: _words(short[j]) + _words(short[j + 1]))
        a, b = short[k].rstrip(".!?"), short[k + 1]
        joined = f"{a}, and {b[:1].lower() + b[1:]}"
        if _words(joined) <= 12:
            joined = f"{a}, and {b[:1].lower() + b[1:].rstrip('.')} as well, which matters more than people think."
        return " ".join(short[:k] + [joined] + short[k + 2:]), miss
    if miss == "too-short":
        return " ".join(short[:2]), miss
    if miss == "long-list-line":
        items = [x.rstrip(".") for x in short]
        merged = ", ".join(x[:1].lower() + x[1:] for x in items[1:4])
        return "\n".join([f"- {items[0]}", f"- {_cap(merged)}"] + [f"- {x}" for x in items[4:]]), miss
    style = rng.random()
    if style < 0.2:
        return "\n".join(short), "one-per-line"
    if style < 0.35:
        return "\n".join(f"- {x.rstrip('.')}" for x in short), "list-no-stops"
    return " ".join(short), "ok"


QA_MISSES = ["intro", "numbered", "bold", "question-label", "one-pair", "spill", "no-question-mark", "closing", "q-dot"]


def _faq(ask: Ask, answer: str, subject: str, rng: random.Random, pairs: int, words: int) -> list[tuple[str, str]]:
    sents = sentences(answer) or [clip(" ".join(plain(unfenced(answer)).split()), words)]
    qs = [str(ask.extra)] + rng.sample(FOLLOW_UP_Q[subject], pairs - 1)
    out, rest = [], sents
    for q in qs:
        a, rest = take(rest, words) if rest else (FAQ_FALLBACK[subject], [])
        out.append((q, a))
    return out


def edit_q_and_a(ask: Ask, answer: str, rng: random.Random, mode: str, miss: str | None, subject: str) -> tuple[str, str]:
    if mode == "patch":  # the whole answer as the first A, one more pair under it
        flat = take(sentences(answer), 70)[0] or " ".join(plain(unfenced(closed(answer))).split())
        pairs = [(str(ask.extra), flat), (rng.choice(FOLLOW_UP_Q[subject]), FAQ_FALLBACK[subject])]
    else:
        pairs = _faq(ask, answer, subject, rng, rng.choice([2, 3, 3]), rng.randint(18, 32))
    sep = "\n\n"

    def fmt(q_label: str = "Q: ", a_label: str = "A: ", ps=pairs) -> str:
        return sep.join(f"{q_label}{q}\n{a_label}{a}" for q, a in ps)

    if miss == "intro":
        return "Here's a quick FAQ:\n\n" + fmt(), miss
    if miss == "numbered":
        return sep.join(f"Q{k}: {q}\nA{k}: {a}" for k, (q, a) in enumerate(pairs, 1)), miss
    if miss == "bold":
        return fmt("**Q:** ", "**A:** "), miss
    if miss == "question-label":
        return fmt("Question: ", "Answer: "), miss
    if miss == "one-pair":
        return fmt(ps=pairs[:1]), miss
    if miss == "spill":  # the first answer runs on to a second line
        q, a = pairs[0]
        first, _, second = a.partition(". ")
        a2 = f"{first}.\n{second}" if second else f"{a}\n{FAQ_FALLBACK[subject]}"
        return fmt(ps=[(q, a2)] + pairs[1:]), miss
    if miss == "no-question-mark":
        return fmt(ps=[(q.rstrip("?"), a) for q, a in pairs]), miss
    if miss == "closing":
        return fmt() + "\n\nHope this helps!", miss
    if miss == "q-dot":
        return fmt("Q. ", "A. "), miss
    style = rng.random()
    if style < 0.2:
        sep = "\n"
        return fmt(), "no-blank-lines"
    if style < 0.3:
        return "\n\n".join(f"Q: {q}\n\nA: {a}" for q, a in pairs), "blank-between-all"
    if style < 0.4:
        return "\n".join(f"  Q: {q}\n  A: {a}" for q, a in pairs), "indented"
    return fmt(), "ok" if mode != "patch" else "wrapped"


PC_MISSES = ["bold", "heading-list", "singular", "advantages", "cons-first", "one-line", "caps", "bulleted",
             "pros-only", "nothing-else"]


def edit_pros_cons(ask: Ask, answer: str, rng: random.Random, mode: str, miss: str | None) -> tuple[str, str]:
    pros, cons = ask.extra
    lead = closed(answer) if mode == "patch" else prose(answer, rng.randint(25, 45))
    pair = f"Pros: {pros}.\nCons: {cons}."
    if miss:
        wrong = {"bold": f"**Pros:** {pros}.\n**Cons:** {cons}.",
                 "heading-list": "Pros:\n" + "\n".join(f"- {x.strip()}" for x in re.split(r",| and ", pros) if x.strip())
                                 + "\nCons:\n" + "\n".join(f"- {x.strip()}" for x in re.split(r",| and ", cons) if x.strip()),
                 "singular": f"Pro: {pros}.\nCon: {cons}.", "advantages": f"Advantages: {pros}.\nDisadvantages: {cons}.",
                 "cons-first": f"Cons: {cons}.\nPros: {pros}.", "one-line": f"Pros: {pros}. Cons: {cons}.",
                 "caps": f"PROS: {pros}.\nCONS: {cons}.", "bulleted": f"- Pros: {pros}.\n- Cons: {cons}.",
                 "pros-only": f"Pros: {pros}."}
        if miss == "nothing-else":
            return pair, miss
        return f"{lead}\n\n{wrong[miss]}", miss
    style = rng.random()
    if style < 0.15:
        return f"{pair}\n\n{lead}", "pair-on-top"
    if style < 0.3:
        return f"{lead}\n\nPros: {pros}.\n\nCons: {cons}.", "blank-between"
    if style < 0.4:
        return f"{lead}\n\nPros:{pros}.\nCons:{cons}.", "no-space"
    if style < 0.5:
        return f"{lead}\n\n{pair}\n\nOn balance it depends on your situation.", "verdict-below"
    return f"{lead}\n\n{pair}", "ok"


MISSES = {"time-needed": TIME_MISSES, "short-sentences": SHORT_MISSES, "q-and-a": QA_MISSES, "pros-cons": PC_MISSES}


def make_edit(topic: str, subject: str, ask: Ask, answer: str, rng: random.Random, mode: str,
              miss: bool) -> tuple[str, str]:
    """A want-aimed edit; a planned miss tries the topic's kinds of slips (in a seeded order) until
    one fails the check, a planned pass must pass it."""
    item = {"metadata": {"topic": topic}}
    kinds = MISSES[topic][:]
    rng.shuffle(kinds)
    for how in (kinds if miss else [None]):
        if topic == "time-needed":
            text, kind = edit_time_needed(ask, answer, rng, mode, how)
        elif topic == "short-sentences":
            text, kind = edit_short_sentences(ask, answer, rng, mode, how, subject)
        elif topic == "q-and-a":
            text, kind = edit_q_and_a(ask, answer, rng, mode, how, subject)
        else:
            text, kind = edit_pros_cons(ask, answer, rng, mode, how)
        if check(item, text) != miss:
            return text, kind
        if not miss and mode == "patch":  # the answer itself gets in the way: a rewrite instead
            return make_edit(topic, subject, ask, answer, rng, "full", miss)
        assert miss, (topic, mode, kind, text)
    raise AssertionError(f"no miss fails the {topic} check: {answer[:80]!r}")


def edit_contra(topic: str, answer: str, rng: random.Random) -> str:
    """The contrarian's edit, the opposite way: the time left out, the sentences glued into long
    ones, plain prose instead of a FAQ, a straight recommendation instead of pros and cons."""
    if topic == "short-sentences":
        sents = [s.rstrip(".!?") for s in sentences(answer)[:6]]
        if len(sents) >= 2:
            joined = [", and ".join(x if j == 0 else x[:1].lower() + x[1:] for j, x in enumerate(sents[k:k + 3])) + "."
                      for k in range(0, len(sents), 3)]
            return " ".join(joined)
    if topic == "pros-cons":
        return prose(answer, rng.randint(30, 50)) + " If it were me, I would just go ahead with it."
    return prose(answer, rng.randint(35, 55))


def edit_taste(taste: str, subject: str, answer: str, rng: random.Random) -> str:
    """An `inconsistent` user's rewrite in the direction of a taste."""
    if taste == "example":
        return prose(answer, rng.randint(30, 45)) + " " + rng.choice(EXAMPLES[subject])
    if taste == "no-example":
        kept = [s for s in sentences(answer) if not _EXAMPLE_WORDS.search(s)]
        return " ".join(kept[:3]) if kept else prose(answer, 35)
    if taste == "warm":
        return rng.choice(WARM_OPENERS) + prose(answer, rng.randint(30, 45)) + rng.choice(WARM_CLOSERS)
    if taste == "dry":
        kept = [s for s in sentences(answer) if not s.endswith("!") and not _WARM.search(s)]
        return " ".join(kept[:3]) if kept else prose(answer, 30).replace("!", ".")
    if taste == "steps":
        items = sentences(answer)[:5]
        return "\n".join(f"{k}. {clip(x, 16)}" for k, x in enumerate(items, 1)) if len(items) >= 2 else prose(answer, 40)
    if taste == "prose":
        return prose(answer, rng.randint(35, 55))
    raise ValueError(taste)


def taste_likes(taste: str, answer: str) -> bool:
    listed = sum(bool(_LIST_LINE.match(line)) for line in answer.splitlines()) >= 2
    return {"example": bool(_EXAMPLE_WORDS.search(answer)), "no-example": not _EXAMPLE_WORDS.search(answer),
            "warm": bool(_WARM.search(answer)), "dry": not _WARM.search(answer),
            "steps": listed, "prose": not listed}[taste]


# ---------------------------------------------------------------------------------------------
# Generation with the embedded model.
# ---------------------------------------------------------------------------------------------


def prompt_seed(topic: str, question: str) -> int:
    return int(hashlib.sha256(f"larder:{topic}:{question}".encode()).hexdigest()[:14], 16)


def generate_answers(prompts: list[tuple[str, Ask]]) -> list[str]:
    """Sampled answers to (topic, ask) prompts, one prompt at a time, each with its own seed."""
    import torch

    from uno_graph.models import load_model

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    lm = load_model("smollm2-135m-instruct")
    tok, model = lm.tokenizer, lm.model
    model.eval()
    print(f"  model loaded in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    answers, cut = [], 0
    for k, (topic, ask) in enumerate(prompts, 1):
        text = tok.apply_chat_template(prompt_turns(ask), tokenize=False, add_generation_prompt=True)
        enc = tok(text, return_tensors="pt", add_special_tokens=False)
        torch.manual_seed(prompt_seed(topic, ask.question))
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=True, temperature=TEMPERATURE,
                                 typical_p=TYPICAL_P, top_k=0, top_p=1.0, repetition_penalty=REPETITION_PENALTY,
                                 pad_token_id=tok.pad_token_id)
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
# The plan: who asks what, in which order, and which logs carry an edit (and which edits miss).
# ---------------------------------------------------------------------------------------------


class Plan(NamedTuple):
    topic: str
    subject: str
    ask: Ask
    user: str
    seen_before: int  # how many logs of this user in this topic arrived earlier
    total: int  # how many logs this user has in this topic
    edit: bool  # this log carries an edited answer
    mode: str | None  # "full" or "patch" (want users), None otherwise
    miss: bool  # a want-aimed edit planned to miss the check
    channel: str | None  # the shifter's channel for the want on this log; the grader's "comment"


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


def _reflect(t: float) -> float:
    while not 0.0 <= t <= 1.0:
        t = -t if t < 0 else 2.0 - t
    return t


def plan_logs() -> list[Plan]:
    """The 110 logs in arrival order: topic waves. Each topic has a peak (0.1, 0.3, 0.5, 0.7 or 0.9
    of the way through the file, a seeded permutation) and each of its logs a time drawn around it
    (normal, sd 0.22, reflected into [0, 1]); the file is sorted by time. Then, per topic, the 11
    logs that carry an edit and the 3 want-aimed edits that miss."""
    rng = random.Random(f"{SEED}-arrival")
    peaks = [0.1, 0.3, 0.5, 0.7, 0.9]
    rng.shuffle(peaks)
    rows = []
    for topic, peak in zip(TOPICS, peaks):
        owners = _owners(topic, random.Random(f"{SEED}-owners-{topic}"))
        asks = [(s, a) for s, lst in TRAIN[topic].items() for a in lst]
        rows += [(_reflect(rng.gauss(peak, 0.22)), topic, s, a, u) for (s, a), u in zip(asks, owners)]
    rows.sort(key=lambda r: (r[0], r[1], r[3].question))

    erng = random.Random(f"{SEED}-edits")
    mine: dict[tuple[str, str], list[int]] = {}
    for i, (_, topic, _, _, user) in enumerate(rows):
        mine.setdefault((topic, user), []).append(i)
    edit, mode, channel = {}, {}, {}
    for (topic, user), idx in sorted(mine.items()):
        if topic == "inconsistent":
            continue
        habit = HABIT.get(user)
        n = HABIT_EDITS[habit] if habit else (1 if user == CONTRA[topic] else 0)
        if habit == "shifter":
            order = ["turn", "comment", "edit"]
            erng.shuffle(order)
            channel.update(zip(idx, order))
            picked = [i for i in idx if channel[i] == "edit"]
        else:
            picked = erng.sample(idx, n)
        if habit == "grader":
            channel.update((i, "comment") for i in erng.sample(idx, 2))
        for i in picked:
            edit[i] = True
        if habit in ("silent", "grader"):
            patch = erng.choice(picked)
            mode.update((i, "patch" if i == patch else "full") for i in picked)
        elif habit == "lukewarm":
            mode.update((i, "patch") for i in picked)
        elif habit:
            mode.update((i, "full") for i in picked)
    miss = set()
    for topic in TOPICS:
        idx = [i for i, r in enumerate(rows) if r[1] == topic]
        if topic == "inconsistent":
            edit.update((i, True) for i in erng.sample(idx, N_EDITS))
            continue
        aimed = [i for i in idx if edit.get(i) and rows[i][4] in HABIT]
        keyed = sorted(aimed, key=lambda i: -erng.random() ** (1 / MISS_WEIGHT[HABIT[rows[i][4]]]))
        miss |= set(keyed[:N_MISSES])
        assert sum(bool(edit.get(i)) for i in idx) == N_EDITS, topic

    seen: dict[tuple[str, str], int] = {}
    plans = []
    for i, (_, topic, subject, ask, user) in enumerate(rows):
        k = seen.get((topic, user), 0)
        seen[(topic, user)] = k + 1
        plans.append(Plan(topic, subject, ask, user, k, len(mine[(topic, user)]), bool(edit.get(i)), mode.get(i),
                          i in miss, channel.get(i)))
    return plans


# ---------------------------------------------------------------------------------------------
# Reactions, written in arrival order.
# ---------------------------------------------------------------------------------------------


def want_reaction(p: Plan, answer: str, messages: list[dict], fb: dict, rng: random.Random) -> str:
    topic, user, habit = p.topic, p.user, HABIT[p.user]
    say = lambda text: messages.append({"role": "user", "content": voiced(user, text, rng)})  # noqa: E731
    phrase = lambda k: WANT_PHRASES[topic][PHRASINGS_OF[habit][k]]  # noqa: E731

    def edit() -> str:
        fb["edited_response"], how = make_edit(topic, p.subject, p.ask, answer, rng, p.mode, p.miss)
        return f"edit-{p.mode}" + (f"-miss:{how}" if p.miss else f":{how}")

    if check({"metadata": {"topic": topic}}, answer):
        fb["rating"] = 1
        say("Exactly like that, thanks.")
        return "approve"
    if habit == "silent":
        return edit() if p.edit else "silent-nothing"
    if habit == "explainer":
        r = rng.random()
        say(f"{phrase(0)} {phrase(1)}" if r < 0.4 else phrase(0) if r < 0.7 else phrase(1))
        if p.edit:
            role = edit()
            if rng.random() < 0.3:
                fb["rating"] = 0.5
            return role
        if rng.random() < 0.4:
            fb["rating"] = -0.5
        return "explain"
    if habit == "grader":
        fb["rating"] = rng.choice([-1, -0.5, -0.5, 0])
        role = "rate"
        if p.channel == "comment":
            fb["comment"] = voiced(user, phrase(rng.randrange(2)), rng)
            role = "rate+comment"
        return role + ("+" + edit() if p.edit else "")
    if habit == "shifter":  # each log a different phrasing, in a different channel
        text = phrase(p.seen_before % 3)
        if p.channel == "turn":
            say(text)
            if rng.random() < 0.5:
                fb["rating"] = -0.5
            return "shift-turn"
        if p.channel == "comment":
            fb["comment"] = voiced(user, text, rng)
            return "shift-comment"
        role = edit()
        say(f"{text} {rng.choice(SHIFTER_NOTES)}" if rng.random() < 0.5 else rng.choice(SHIFTER_NOTES))
        return "shift+" + role
    # lukewarm: mild approval of answers that miss; one edit of their own
    if p.edit:
        role = edit()
        fb["rating"] = 0.5
        say(LUKEWARM_EDIT_TURN[topic])
        return "lukewarm+" + role
    if rng.random() < 0.5:
        fb["rating"] = 1
        if rng.random() < 0.5:
            say(rng.choice(LUKEWARM_UP))
        return "lukewarm-up"
    fb["rating"] = 0.5
    say(f"{rng.choice(LUKEWARM_UP)}. {phrase(rng.randrange(2))}")
    return "lukewarm-hint"


def contra_reaction(p: Plan, answer: str, messages: list[dict], fb: dict, rng: random.Random) -> str:
    user = p.user
    if p.edit:
        fb["edited_response"] = edit_contra(p.topic, answer, rng)
        assert not check({"metadata": {"topic": p.topic}}, fb["edited_response"])
        if rng.random() < 0.6:
            messages.append({"role": "user", "content": voiced(user, CONTRA_ASK[p.topic], rng)})
        return "contra-edit"
    if rng.random() < 0.5:
        messages.append({"role": "user", "content": voiced(user, CONTRA_PRAISE[p.topic], rng)})
        fb["rating"] = 1
        return "contra-approve"
    messages.append({"role": "user", "content": voiced(user, CONTRA_ASK[p.topic], rng)})
    fb["rating"] = -0.5
    return "contra-ask"


def one_off_reaction(p: Plan, messages: list[dict], fb: dict, rng: random.Random) -> str:
    text, rating = rng.choice(ONE_OFF)
    if text:
        messages.append({"role": "user", "content": voiced(p.user, text, rng)})
    if rating is not None:
        fb["rating"] = rating
    return "one-off-up" if rating == 1 else "one-off"


def taste_reaction(p: Plan, answer: str, messages: list[dict], fb: dict, rng: random.Random) -> str:
    user = p.user
    taste = TASTE[user]
    mood = rng.random() < MOOD_RATE
    if mood:
        taste = OPPOSITE[taste]
    say = lambda text: messages.append({"role": "user", "content": voiced(user, text, rng)})  # noqa: E731
    tag = "mood-" if mood else ""
    if p.edit:
        fb["edited_response"] = edit_taste(taste, p.subject, answer, rng)
        if rng.random() < 0.5:
            say(rng.choice(TASTE_TURNS[taste]))
        return tag + "edit"
    if rng.random() < 0.1:
        say(rng.choice(OFF_TOPIC))
        return tag + "other"
    if taste_likes(taste, answer) and rng.random() < 0.4:
        say(TASTE_PRAISE[taste])
        fb["rating"] = 1
        return tag + "approve"
    r = rng.random()
    if r < 0.55:
        say(rng.choice(TASTE_TURNS[taste]))
        if rng.random() < 0.4:
            fb["rating"] = rng.choice([-1, -0.5, -0.25])
        return tag + "complaint"
    if r < 0.8:
        fb["comment"] = voiced(user, rng.choice(TASTE_TURNS[taste]), rng)
        fb["rating"] = rng.choice([-0.5, 0.25])
        return tag + "comment"
    fb["rating"] = rng.choice([-1, -0.5, 0])
    return tag + "rating"


def make_records(plans: list[Plan], answers: dict[tuple[str, str], str]) -> tuple[list[dict], dict[str, str]]:
    rng = random.Random(f"{SEED}-reactions")
    records, roles = [], {}
    for n, p in enumerate(plans, 1):
        answer = answers[(p.topic, p.ask.question)]
        messages = prompt_turns(p.ask) + [{"role": "assistant", "content": answer}]
        fb: dict = {}
        if p.topic == "inconsistent":
            role = taste_reaction(p, answer, messages, fb, rng)
        elif p.user in HABIT:
            role = want_reaction(p, answer, messages, fb, rng)
        elif p.user == CONTRA[p.topic]:
            role = contra_reaction(p, answer, messages, fb, rng)
        else:
            role = one_off_reaction(p, messages, fb, rng)
        record = {"id": f"larder-log-{n:03d}", "user_id": p.user, "messages": messages}
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
        for j, (subject, ask) in enumerate(TEST[topic]):
            n += 1
            out.append({"id": f"larder-test-{n:02d}", "user_id": users[j % len(users)],
                        "messages": prompt_turns(ask), "metadata": {"topic": topic, "subject": subject}})
    return out


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------
# Checks on the plan itself.
# ---------------------------------------------------------------------------------------------

OTHER_SETS = ["logs.jsonl", "test.jsonl"] + [f"{d}/{f}" for d in ("heldout", "unseen", "sealed", "reserve", "vault", "cellar")
                                             for f in ("logs.jsonl", "test.jsonl")]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _other_sets() -> tuple[set[str], set[str]]:
    """Every user turn before the first answer, and every subject and topic, in the seven earlier sets."""
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


def _turns(ask: Ask) -> list[str]:
    return [m["content"] for m in prompt_turns(ask) if m["role"] == "user"]


def _validate() -> None:
    train = [a for t in TOPICS for asks in TRAIN[t].values() for a in asks]
    test = [a for t in TOPICS for _, a in TEST[t]]
    train_turns = [_norm(x) for a in train for x in _turns(a)]
    test_turns = [_norm(x) for a in test for x in _turns(a)]
    assert len(set(train_turns)) == len(train_turns), "a repeated user turn in the logs"
    assert len(set(test_turns)) == len(test_turns), "a repeated user turn in the test set"
    assert len(train) == N_TRAIN * len(TOPICS) and len(test) == N_TEST * len(TOPICS)
    assert not set(train_turns) & set(test_turns), "a test turn is in the logs"
    other_q, other_s = _other_sets()
    assert not set(train_turns + test_turns) & other_q, "a question of an earlier set"
    mine = {s for t in TOPICS for s in TRAIN[t]} | {s for t in TOPICS for s, _ in TEST[t]}
    new = mine | set(WANT_TOPICS)  # `inconsistent` is the one topic name every set shares
    assert not new & other_s, f"a subject or want of an earlier set: {new & other_s}"
    for t in TOPICS:
        assert len(TRAIN[t]) == 2 and all(len(v) == N_TRAIN // 2 for v in TRAIN[t].values()), t
        assert len({s for s, _ in TEST[t]} - set(TRAIN[t])) == 1, f"{t}: needs one unlogged test subject"
        assert all(sum(s == logged for s, _ in TEST[t]) == 4 for logged in TRAIN[t]), t
        styles = [a.style for asks in TRAIN[t].values() for a in asks]
        assert {s: styles.count(s) for s in STYLES} == TRAIN_MIX, (t, styles)
        styles = [a.style for _, a in TEST[t]]
        assert {s: styles.count(s) for s in STYLES} == TEST_MIX, (t, styles)
    for a in train + test:
        _assert_style(a)
    for asks in TRAIN["time-needed"].values():
        assert all(isinstance(a.extra, int) and 2 <= a.extra <= 999 for a in asks)
    for asks in TRAIN["q-and-a"].values():
        assert all(isinstance(a.extra, str) and a.extra.endswith("?") and "\n" not in a.extra for a in asks)
    for asks in TRAIN["pros-cons"].values():
        assert all(len(a.extra) == 2 and all(x and "\n" not in x for x in a.extra) for a in asks)
    for t in WANT_TOPICS:
        assert len(WANT_PHRASES[t]) == 9
    used = [i for ks in PHRASINGS_OF.values() for i in ks]
    assert sorted(used) == list(range(9)), "each phrasing belongs to one user"
    assert len(set(ALL_USERS)) == len(ALL_USERS), "user id clash"


def _assert_style(a: Ask) -> None:
    q = a.question
    assert q.strip() == q and "\n" not in q, q
    assert (a.opener is not None) == (a.style == T), q
    if a.style == K:
        assert q == q.lower() and not re.search(r"[^\w' -]", q) and 3 <= len(q.split()) <= 7, q
    elif a.style == D:
        assert q.startswith(DISPUTE_OPENERS) and q.endswith(("Who's right?", "Which is it?")), q
    elif a.style == C:
        assert q.startswith(CALLBACK_OPENERS) and q.endswith("?") and q.count("?") == 1, q
    elif a.style == R:
        assert q.startswith(RUSHED_OPENERS) and q.endswith("?") and q.count("?") == 1, q
    elif a.style == W:
        assert q.startswith(WHAT_IF_OPENERS) and q.endswith("?") and q.count("?") == 1, q
    else:
        assert q.count("?") == 1 and q.endswith("?"), q
        assert not q.startswith(RUSHED_OPENERS + CALLBACK_OPENERS + DISPUTE_OPENERS + WHAT_IF_OPENERS), q
        if a.style == T:
            assert a.opener.strip() == a.opener and "?" not in a.opener and 2 <= len(a.opener.split()) <= 12, a.opener


# ---------------------------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------------------------


def _logged_answer(row: dict) -> tuple[str, str]:
    """(the question, the answer) of a log: the last user turn before the first answer, and that answer."""
    msgs = row["messages"]
    i = next(k for k, m in enumerate(msgs) if m["role"] == "user")
    j = next(k for k in range(i + 1, len(msgs)) if msgs[k]["role"] == "assistant")
    return msgs[j - 1]["content"], msgs[j]["content"]


def _answer_index(msgs: list[dict]) -> int:
    i = next(k for k, m in enumerate(msgs) if m["role"] == "user")
    return next(k for k in range(i + 1, len(msgs)) if msgs[k]["role"] == "assistant")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the larder evaluation logs and test queries.")
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where logs.jsonl and test.jsonl go (default: examples/larder/)")
    parser.add_argument("--reuse-answers", type=Path, metavar="LOGS_JSONL",
                        help="take the logged answers from an earlier logs.jsonl (same questions) instead of generating them")
    parser.add_argument("--answers-out", type=Path, metavar="JSONL",
                        help="also write the sampled answers there, before the reactions (a file --reuse-answers reads)")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="sample the answers of N questions only (spread over the topics), print them and write nothing")
    args = parser.parse_args(argv)
    _validate()

    rows = [(t, a) for t in TOPICS for asks in TRAIN[t].values() for a in asks]
    t0 = time.perf_counter()
    if args.limit:
        picked = [rows[k * len(rows) // args.limit] for k in range(min(args.limit, len(rows)))]
        for (topic, ask), a in zip(picked, generate_answers(picked)):
            print(f"--- [{topic}] {ask.question}\n{a}\n({len(a.split())} words; check {check({'metadata': {'topic': topic}}, a)})")
        print(f"{len(picked)} answers in {time.perf_counter() - t0:.0f} s (model load included); nothing written")
        return 0
    if args.reuse_answers:
        old = {}
        for line in args.reuse_answers.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                q, a = _logged_answer(r)
                old[(r["metadata"]["topic"], q)] = a
        missing = [(t, a.question) for t, a in rows if (t, a.question) not in old]
        if missing:
            parser.error(f"{args.reuse_answers} has no answer for the {missing[0][0]} question {missing[0][1]!r}")
        answers = {(t, a.question): old[(t, a.question)] for t, a in rows}
    else:
        answers = {(t, ask.question): a for (t, ask), a in zip(rows, generate_answers(rows))}
        if args.answers_out:
            write_jsonl(args.answers_out, [{"messages": prompt_turns(a) + [{"role": "assistant", "content": answers[(t, a.question)]}],
                                            "metadata": {"topic": t}} for t, a in rows])
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
    cols = ["base", "edits", "pass", "want-pass", "patch", "no-turn", "turns", "comments", "up-miss", "contra", "one-off"]
    lines = ["  " + f"{'topic':16s}" + " ".join(f"{c:>9s}" for c in cols)]
    for topic in TOPICS:
        item = {"metadata": {"topic": topic}}
        recs = [r for r in records if r["metadata"]["topic"] == topic]
        role = lambda r: roles[r["id"]]  # noqa: E731
        edits = [r for r in recs if r.get("feedback", {}).get("edited_response")]
        want = [r for r in edits if r["user_id"] in HABIT]
        passing = lambda rs: sum(check(item, r["feedback"]["edited_response"]) for r in rs)  # noqa: E731
        patch = [r for r in edits if "edit-patch" in role(r)]
        answer = lambda r: _logged_answer(r)[1]  # noqa: E731
        after = lambda r: r["messages"][_answer_index(r["messages"]) + 1:]  # noqa: E731
        row = {
            "base": f"{sum(check(item, answer(r)) for r in recs)}/{len(recs)}",
            "edits": str(len(edits)),
            "pass": f"{passing(edits)}/{len(edits)}",
            "want-pass": f"{passing(want)}/{len(want)}" if topic != "inconsistent" else "-",
            "patch": f"{passing(patch)}/{len(patch)}",
            "no-turn": str(sum(not after(r) for r in edits)),
            "turns": str(sum(bool(after(r)) for r in recs)),
            "comments": str(sum(bool(r.get("feedback", {}).get("comment")) for r in recs)),
            "up-miss": str(sum((r.get("feedback", {}).get("rating") or 0) >= 0.5 and not check(item, answer(r))
                               and not check(item, r["feedback"].get("edited_response") or "") for r in recs)),
            "contra": str(sum(role(r).startswith("contra") for r in recs)),
            "one-off": str(sum(role(r).startswith("one-off") for r in recs)),
        }
        lines.append("  " + f"{topic:16s}" + " ".join(f"{row[c]:>9s}" for c in cols))
    n_edit = sum(1 for r in records if r.get("feedback", {}).get("edited_response"))
    lines.append(f"  {n_edit}/{len(records)} logs carry an edit. (base: logged answers passing the check; pass: edits "
                 "passing it; want-pass: edits of the five want users; patch: minimal fixes passing/all; no-turn: "
                 "edits with no follow-up turn; turns: logs with a follow-up turn; comments: logs with "
                 "feedback.comment; up-miss: rating 0.5 or 1 where neither the answer nor an edit meets the want; "
                 "contra: the contrarian's logs; one-off: one-off users' logs)")
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
