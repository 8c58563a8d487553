""".venv/bin/python examples/unseen/make_unseen_logs.py [--reuse-answers examples/unseen/logs.jsonl]

Writes the third evaluation-only set: `examples/unseen/logs.jsonl` (110 user logs, 22 per topic)
and `examples/unseen/test.jsonl` (8 test queries per topic, none of them a logged question). It is
meant to be used ONCE, for a final evaluation: never tune anything on it. The topics and their
checks (`examples/unseen/checks.py`) were written and committed before this script generated
anything.

How the procedure differs from `examples/make_example_logs.py` and `examples/heldout/make_heldout_logs.py`:

- Wants and subjects are new: a final `Summary:` line (photography, learning an instrument);
  exactly three lines (board games, cycling); all lowercase (movies & TV, camping); opening with
  `Yes`/`No` (nutrition, parenting); inconsistent (philosophy, architecture). The test set adds a
  third, unlogged subject per topic (knitting, video games, public speaking, renting, mythology).
- Questions are long and conversational: context about the asker, often two or three sentences,
  some typed in lowercase, some with typos kept as typed (the other sets: short one-line questions).
- Decoding: on-policy answers of the embedded SmolLM2-135M-Instruct (`uno_graph.models.load_model`,
  the user turn alone through the chat template, left padding), sampled with temperature 0.9,
  top_p 0.92, top_k 50, repetition_penalty 1.15, max_new_tokens 100, in batches of 5 over a
  seeded shuffle of all 110 questions (topics mixed within a batch), `torch.manual_seed(SEED + b)`
  before batch b, `torch.set_num_threads(1)`. Answers are logged as generated (stripped), also
  when cut mid-sentence by the token limit.
- Users are driven by who they are, not by a per-topic quota of reactions: 25 users (x01..x25).
  Sixteen "want" users (four per want topic) each have one persona that fixes how they react when
  an answer misses their want: `editor` (rewrites the answer, with a complaint, a one-line
  announcement or nothing), `sloppy` (rewrites it, but every other rewrite, the first included, misses
  the want in a plausible way), `talker` (complains in a follow-up turn, sometimes also rewrites), `quiet`
  (a bare thumbs-down, a terse `feedback.comment`, or a silent rewrite). Every want user approves
  (rating 1) an answer that already meets the want. Nine "fickle" users (x17..x25) each have a
  personal taste (more detail, shorter, formal, casual, lists, no recaps, nuance over verdicts, one
  paragraph, chit-chat); they write the whole `inconsistent` topic and, in the want topics, the
  2-3 logs per topic that ask for the opposite of the want.
- Each user has a personal set of phrasings of their want (direct ones and indirect complaints
  that never name the form), a writing style (lowercase, typo rate, greeting, sign-off, trailing
  "..."), and some of them never state the want in words at all.

Deterministic: fixed seeds, fixed batches, one thread; two runs give identical files.
`--reuse-answers OLD_LOGS` takes the logged answers from an earlier logs.jsonl (matched by id and
question) and skips the model.
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

from checks import check  # noqa: E402  (examples/unseen/checks.py)

SEED = 5150
BATCH_SIZE = 5
MAX_NEW_TOKENS = 100
TEMPERATURE = 0.9
TOP_P = 0.92
TOP_K = 50
REPETITION_PENALTY = 1.15
N_TRAIN = 22
N_TEST = 8

TOPICS = ["summary-line", "three-lines", "lowercase", "yes-no", "inconsistent"]
WANT_TOPICS = TOPICS[:4]

# ---------------------------------------------------------------------------------------------
# Questions (typos are part of the questions, as the users typed them).
# ---------------------------------------------------------------------------------------------

TRAIN: dict[str, dict[str, list[str]]] = {
    "summary-line": {
        "photography": [
            "I just got my first DSLR as a birthday present and everything I shoot indoors comes out blurry. Should I be using a faster shutter speed or is it the lens?",
            "When I take pictures of sunsets with my phone the sky looks great but the people in front are totally dark. How do I get both to look right?",
            "My friend says shooting in RAW is a must but the files are huge and I don't really edit much. What's actually the difference between RAW and JPEG?",
            "I'm going to my cousin's wedding as a guest, not the official photographer, and I'd like some nice candid shots. What camera settings should I start with?",
            "what does aperture actually do? i keep seeing f/1.8 and f/8 in tutorials and im confused which one gives the blurry background",
            "We have a trip to Iceland coming up and I'd love to photograph the northern lights. How do I do that with a basic camera and a tripod?",
            "I shoot a lot of pictures of my kids playing soccer and half of them are blurry. How can I freeze the motion better?",
            "Is the rule of thirds something I should follow all the time? My photos feel boring when I always put the subject in the middle.",
            "My landscape photos look flat and kind of grey compared to what I see online. What am I doing wrong?",
            "How do I clean the sensor on my mirrorless camera? There are little dark spots on every photo I take at f/16.",
            "I want to start selling prints of my nature photos. How big can I print a 24 megapixel image before it starts to look bad?",
        ],
        "music-practice": [
            "I'm 42 and finally started learning piano three months ago. How long should I practice every day to actually get better without burning out?",
            "My fingers hurt a lot when I play guitar, especially on the steel strings. Is there a way to build calluses faster?",
            "I can play songs from memory but I can't read sheet music at all. Where should I start if I want to learn to sight-read?",
            "Whenever I play along with a metronome I fall behind after a few bars. How do I get better at keeping time?",
            "my daughter wants to learn violin and so do i, we are both complete beginers. what should we look for when we rent an instrument?",
            "I've been teaching myself ukulele from YouTube videos. How do I know if I'm building bad habits without a teacher?",
            "What's the best way to memorize a piece for a recital? I have one in six weeks and I always blank on stage.",
            "I keep hearing that scales and arpeggios are important. Why should I practice them instead of just playing songs?",
            "My singing teacher says I'm breathing wrong. How do I learn to breathe from the diaphragm?",
            "How do I tune a guitar by ear if my tuner app isn't working? I have a small gig tonight.",
            "Is it better to learn chords first or melodies first on the keyboard? I want to accompany myself when I sing.",
        ],
    },
    "three-lines": {
        "board-games": [
            "We're hosting a game night for six adults, and some of them never play board games. What's a good game that's easy to teach in ten minutes?",
            "I keep losing chess games in the opening because I don't know any theory. What should a beginner focus on in the first ten moves?",
            "In Catan my friends always gang up on whoever is winning. How do I avoid becoming the target?",
            "How do you actually castle in chess? My nephew says I did it wrong because my king moved through check.",
            "my partner and i want a board game for two players that isnt chess. something with strategy but not super long, any sugestions?",
            "Our Monopoly games take four hours and someone always quits angry. Are there house rules that make it shorter?",
            "How do I teach a seven year old to play chess without boring him? He likes the horse piece the most.",
            "What's the difference between a cooperative board game and a regular one? My group is tired of competing against each other.",
            "I'd like to get better at Scrabble. Are there a few two-letter words everyone should know?",
            "How should I store a board game with lots of tiny pieces so that setting it up doesn't take forever?",
            "When is it worth trading pieces in chess? I never know whether to swap my bishop for a knight.",
        ],
        "cycling": [
            "I started commuting by bike, 12 km each way, and my knees hurt after a week. Could my saddle be at the wrong height?",
            "My chain keeps making a grinding noise when I shift to the smaller gears. What should I check first?",
            "I got a flat tire on the way to work yesterday and had to walk the rest. How do I fix a puncture by the side of the road?",
            "What tire pressure should I ride at on a hybrid bike? The tire says 50-85 psi, which is a huge range.",
            "im planning my first 100 km ride next month, longest so far was 60. how should i train and what do i eat on the ride?",
            "It's getting dark early now. What lights and gear do I need to be safe cycling home at night?",
            "My brakes squeal loudly whenever it's wet out. Is that dangerous or just annoying?",
            "How often should I clean and lube my bike chain if I ride every day in the city?",
            "I want to buy a used road bike online. What should I look at so I don't end up with a lemon?",
            "How do I ride up steep hills without getting off and pushing? I always run out of breath halfway up.",
            "My hands go numb on longer rides. Is there something wrong with how I sit on the bike?",
        ],
    },
    "lowercase": {
        "movies-tv": [
            "My wife and I just finished a long crime drama and want something similar but lighter. What should we look for in the next show?",
            "Why do so many movies now have scenes after the credits? I always leave early and then find out I missed something.",
            "I want to watch all the classic Hitchcock films over the winter. In what order would you watch them?",
            "Is it better to watch a foreign movie in the original language with subtitles, or dubbed? My friends argue about this every single time.",
            "what makes a movie a 'film noir'? my film class mentioned it and i nodded but have no idea",
            "My kids are 8 and 11. How do I pick movies for family night that nobody finds too babyish or too scary?",
            "Why do TV shows get cancelled after one season even when people seem to love them?",
            "I'd like to start a small movie club with some coworkers. How do we pick the films and run the discussion?",
            "What does a cinematographer actually do on a movie set? The name always comes up early in the credits.",
            "Why does dialogue in movies sound so quiet while the explosions are super loud? I keep changing the volume all night.",
            "Is it worth watching the extended editions of long fantasy movies, or are the theatrical cuts better?",
        ],
        "camping": [
            "We're taking our kids camping for the first time, just two nights at a campground with toilets. What do we absolutely need to bring?",
            "Last time I went camping I froze all night even in a sleeping bag. How do I stay warm in a tent when it drops to 5 degrees?",
            "How do I pick a good spot to pitch a tent? Ours flooded a bit in the rain last summer.",
            "What's the safest way to store food when camping in an area with bears?",
            "i want to try solo camping for the first time this fall. how do i stay safe and not freak out alone at night",
            "Our campfire always turns into a smoky mess. How do I build one that actually burns well?",
            "How can I cook proper meals at a campsite with just a small gas stove and one pot?",
            "What can I do to keep mosquitoes away at the lake? We get eaten alive every evening.",
            "I'm thinking about buying a tent. Is a three-season tent enough for camping in spring and autumn?",
            "How do I leave a campsite clean? Our group left a mess once and I still feel bad about it.",
            "Is it possible to go camping without a car? I'd take the train and walk the last few kilometres with my gear.",
        ],
    },
    "yes-no": {
        "nutrition": [
            "I eat two or three eggs almost every morning because they keep me full until lunch. Is that too much cholesterol?",
            "My coworker swears intermittent fasting helped her lose weight. Is skipping breakfast actually healthy for most people?",
            "I drink about four cups of coffee a day, mostly before 2 pm. Is that an unhealthy amount of caffeine?",
            "Are frozen vegetables as nutritious as fresh ones? Fresh stuff always goes bad in my fridge before I use it.",
            "i've been told you need to drink 8 glasses of water a day no matter what. is that realy true?",
            "Is it bad to eat late at night? I work evenings and usually have dinner around 11 pm.",
            "I'm vegetarian and my mom keeps worrying about it. Can I get enough protein without eating meat or fish?",
            "Should I take a multivitamin if I already eat a fairly balanced diet?",
            "Are fruit smoothies healthy? I make one with banana, mango and orange juice every day.",
            "Is brown rice really much better for you than white rice, or is that overhyped?",
            "Does eating fat make you fat? My dad still avoids butter and nuts because of that idea.",
        ],
        "parenting": [
            "My son is three and still wakes up every night wanting to sleep in our bed. Is it okay to just let him?",
            "Should I let my 10-year-old have a smartphone? All her friends have one and she feels left out.",
            "Is it normal for a two-year-old to throw huge tantrums several times a day? We're exhausted.",
            "My daughter is 6 and wants to quit piano after two months. Should I make her keep going?",
            "is it bad to give kids pocket money for doing chores? my husband thinks they should help for free",
            "Can a baby sleep with a blanket in the crib at 9 months? My mother-in-law says it's fine.",
            "Our teenager wants to stay up until 1 am on weekends. Should we still set a fixed bedtime at 15?",
            "Is it okay to tell my kids small white lies, like that the ice cream truck only plays music when it's out of ice cream?",
            "My twins fight constantly over toys. Should I step in every time or let them sort it out themselves?",
            "Do kids really need to finish everything on their plate? I grew up with that rule and hated it.",
            "Is screen time before bed actually bad for my kids' sleep, or is that just a myth?",
        ],
    },
    "inconsistent": {
        "philosophy": [
            "I'm reading about ethics for a night class. What's the main difference between utilitarianism and Kant's view of morality?",
            "What did Descartes mean by 'I think, therefore I am'? It sounds kind of obvious to me.",
            "A friend brought up the trolley problem at dinner and we argued for an hour. Why is it such a famous puzzle?",
            "What is stoicism, and why are so many people online suddenly into it?",
            "do we actually have free will or is everything determined? i had this thought at 3am and cant stop thinking about it",
            "What is the Ship of Theseus about? My professor used it to talk about personal identity.",
            "Why did Socrates get sentenced to death? It seems like he was just asking people questions.",
            "What's the difference between existentialism and nihilism? People online use them like they're the same thing.",
            "What is Plato's allegory of the cave supposed to teach us?",
            "How can anyone know that other people have minds like mine? Is there a name for that problem?",
            "What does Nietzsche mean when he says 'God is dead'? It sounds like an attack on religion.",
        ],
        "architecture": [
            "We visited a cathedral in France last summer and the ceilings were unbelievably high. How did builders in the Middle Ages make them stand up?",
            "What is brutalism? Our city wants to tear down a big concrete library and people are protesting.",
            "Why do so many new apartment buildings look the same, with grey panels and big windows?",
            "What's the difference between Gothic and Romanesque architecture? I always mix them up on tours.",
            "how do skyscrapers not fall over in strong wind? i work on the 40th floor and sometimes i feel it sway",
            "What made Frank Lloyd Wright's houses so influential? There's a house in our neighborhood that copies his style.",
            "Why are so many old buildings in European cities built around a courtyard?",
            "What is a flying buttress, and why is it on the outside of the building?",
            "How do architects design buildings to survive earthquakes? I'm moving to a city that gets a lot of them.",
            "Why did the Romans use arches so much? Some of their aqueducts are still standing.",
            "What is Art Deco? I keep seeing the word on old cinemas and hotels.",
        ],
    },
}

# The verdict a `yes-no` user writes at the front of an edit, per logged question.
VERDICTS = dict(zip(TRAIN["yes-no"]["nutrition"] + TRAIN["yes-no"]["parenting"], [
    "No", "No", "No", "Yes", "No", "No", "Yes", "No", "Yes", "No", "No",
    "Yes", "No", "Yes", "Yes", "No", "No", "No", "Yes", "No", "No", "Yes",
]))

TEST: dict[str, list[tuple[str, str]]] = {
    "summary-line": [
        ("photography", "I bought the cheap 50mm lens everyone recommends. What kinds of photos is it actually good for?"),
        ("photography", "My indoor photos always look orange under our living room lamps. How do I fix the colors?"),
        ("photography", "how do i take sharp photos of the moon? mine always come out as a white blob"),
        ("music-practice", "I get really nervous playing in front of people, even my own family. How can I practice performing?"),
        ("music-practice", "I want to learn drums but I live in an apartment. How can I practice without annoying the neighbours?"),
        ("knitting", "I just learned the knit stitch and my scarf keeps getting wider. What am I doing wrong?"),
        ("knitting", "What kind of yarn should a beginner buy for a first project? The store had way too many options."),
        ("knitting", "How do I fix a dropped stitch a few rows down without undoing everything?"),
    ],
    "three-lines": [
        ("board-games", "We just bought Ticket to Ride. What's a good strategy for our very first game?"),
        ("board-games", "What is en passant in chess? My friend did it yesterday and I thought he was cheating."),
        ("board-games", "how many players do you need for Codenames, and can it work with just three of us?"),
        ("cycling", "Should I wear a helmet for short rides around the neighborhood? It's only a few minutes each time."),
        ("cycling", "How do I know what size frame to buy? I'm 1.70 m tall and right between two sizes."),
        ("video-games", "My son plays video games four hours a day. How do I set limits without a fight every evening?"),
        ("video-games", "I want to get into video games as an adult. What's a relaxing first game for someone who has never played?"),
        ("video-games", "Why do my games stutter even though my PC is only a year old?"),
    ],
    "lowercase": [
        ("movies-tv", "What's the difference between a director and a producer? I always see both names first."),
        ("movies-tv", "i want to get into anime but there's so much of it. where should a beginner start?"),
        ("movies-tv", "Why do movie trailers give away the whole plot now? I've started avoiding them because of that."),
        ("camping", "How do I wash dishes at a campsite without a sink?"),
        ("camping", "What's a good sleeping pad for someone with back pain? The thin foam ones hurt."),
        ("public-speaking", "I have to give a 10 minute talk at work next week and I'm terrified. How do I prepare?"),
        ("public-speaking", "How do I stop saying 'um' all the time when I present something?"),
        ("public-speaking", "Should I memorize my speech word for word or use notes? I'm giving a toast at my brother's wedding."),
    ],
    "yes-no": [
        ("nutrition", "Is it okay to drink diet soda every day instead of regular soda?"),
        ("nutrition", "Is peanut butter a healthy snack if I'm trying to lose weight?"),
        ("nutrition", "i heard that eating carrots improves your eyesight. is that actually true?"),
        ("parenting", "Should I let my baby cry it out at night? She's seven months old and wakes up every two hours."),
        ("parenting", "Is it okay to let my 12-year-old walk to school alone? It's about 1 km."),
        ("renting", "My landlord wants to raise the rent in the middle of my lease. Can he do that?"),
        ("renting", "Is renters insurance worth it if I don't own anything expensive?"),
        ("renting", "Can I paint the walls of my rented apartment if I paint them back before I move out?"),
    ],
    "inconsistent": [
        ("philosophy", "What is the difference between ethics and morals? I use the two words interchangeably."),
        ("philosophy", "Who was Confucius and what did he teach?"),
        ("philosophy", "What is empiricism, and how is it different from rationalism?"),
        ("architecture", "Why do traditional Japanese houses have sliding paper doors?"),
        ("architecture", "What is the tallest building in the world and how did they manage to build it so high?"),
        ("mythology", "Who was Odin in Norse mythology? My son loves the Thor movies."),
        ("mythology", "Why did the ancient Greeks have so many gods?"),
        ("mythology", "What is the story of Pandora's box?"),
    ],
}

# ---------------------------------------------------------------------------------------------
# Users: x01..x16 have a want (four per want topic, one persona each); x17..x25 are fickle users
# with a personal taste.
# ---------------------------------------------------------------------------------------------

USER_IDS = [f"x{i:02d}" for i in range(1, 26)]
PERSONAS = ["editor", "sloppy", "talker", "quiet"]
WANT_USERS = {topic: [f"x{k + 1 + 4 * j:02d}" for j in range(4)] for k, topic in enumerate(WANT_TOPICS)}
PERSONA = {u: PERSONAS[(j + k) % 4] for k, topic in enumerate(WANT_TOPICS) for j, u in enumerate(WANT_USERS[topic])}
FICKLE = {  # user -> taste
    "x17": "more-detail", "x18": "shorter", "x19": "formal", "x20": "casual", "x21": "list",
    "x22": "no-recap", "x23": "nuance", "x24": "one-paragraph", "x25": "chit-chat",
}
CONTRADICTORS = {  # the fickle users who ask for the opposite of a want topic's want (one log each)
    "summary-line": ["x22", "x18", "x24"],
    "three-lines": ["x17", "x21"],
    "lowercase": ["x19", "x25"],
    "yes-no": ["x23", "x20", "x17"],
}

_OPENERS = ["", "", "", "", "", "hey ", "Hi, ", "Okay, ", "Hmm. ", "So, ", "Right, ", "Well... "]
_CLOSERS = ["", "", "", "", "", " thanks", " Thanks!", " please :)", " cheers", " ta.", " (thank you)", " :)"]


def _profiles() -> dict[str, dict]:
    rng = random.Random(f"{SEED}-profiles")
    out = {}
    for k, uid in enumerate(USER_IDS):
        out[uid] = {
            "lower": rng.random() < 0.3,
            "typo_rate": rng.choice([0.0, 0.0, 0.02, 0.05, 0.1]),
            "opener": rng.choice(_OPENERS),
            "closer": rng.choice(_CLOSERS),
            "ellipsis": rng.random() < 0.15,  # ends sentences with "..." instead of "."
            "states_want": k % 6 != 4,  # a few users never name the form they want
        }
    return out


PROFILES = _profiles()


def _mistype(word: str, rng: random.Random) -> str:
    m = re.match(r"^([A-Za-z]{5,})(\W*)$", word)
    if not m:
        return word
    w, tail = m.groups()
    i = rng.randrange(1, len(w) - 2)
    kind = rng.randrange(3)
    if kind == 0:
        w = w[:i] + w[i + 1] + w[i] + w[i + 2:]  # swapped letters
    elif kind == 1:
        w = w[:i] + w[i + 1:]  # a dropped letter
    else:
        w = w[:i] + w[i] * 2 + w[i + 1:]  # a doubled letter
    return w + tail


def typed(user: str, text: str, rng: random.Random, *, request: bool = True) -> str:
    """`text` as `user` types it. Phrases in single quotes ('Summary:') are kept verbatim. A
    "please" sign-off only on a request, and no "thanks" sign-off after a thank-you."""
    p = PROFILES[user]
    pieces = re.split(r"((?<![A-Za-z])'[^']+'(?![A-Za-z]))", text)
    out = []
    for j, piece in enumerate(pieces):
        if j % 2 == 0:
            piece = " ".join(_mistype(w, rng) if p["typo_rate"] and rng.random() < p["typo_rate"] else w
                             for w in piece.split(" "))
            if p["lower"]:
                piece = piece.lower()
            if p["ellipsis"]:
                piece = re.sub(r"(?<=[a-z])\.(?=\s|$)", "...", piece)
        out.append(piece)
    text = "".join(out)
    opener = p["opener"].lower() if p["lower"] else p["opener"]
    if opener and not opener.rstrip().endswith((".", "!")) and not re.match(r"I\b|'", text):
        text = text[:1].lower() + text[1:]
    closer = p["closer"].lower() if p["lower"] else p["closer"]
    if ("please" in closer and (not request or "please" in text.lower())) or ("than" in closer and "thank" in text.lower()):
        closer = ""
    return (opener + text + closer).strip()


# Each want user states the want in their own words: USER_PHRASES[user] is a personal subset of
# the topic's phrasings (first = favourite). Indirect ones never name the form.
WANT_PHRASES = {
    "summary-line": {
        "direct": [
            "Please end with a line that starts with 'Summary:' so I can glance at it.",
            "Can you finish with a one-line 'Summary:' at the bottom?",
            "Put a 'Summary:' line at the very end, like a takeaway.",
            "I need the last line to be 'Summary: ...' every time.",
            "Close with 'Summary:' and the gist in a few words.",
            "where's the summary line? end it with 'Summary:' pls",
        ],
        "indirect": [
            "I read all of that and I still don't know what the takeaway is.",
            "I'll forget all of this by tomorrow. Give me something to remember at the end.",
            "Nice detail but it just stops. Wrap it up for me.",
        ],
    },
    "three-lines": {
        "direct": [
            "Three lines please, no more.",
            "Can you keep it to exactly 3 lines? It's for a notes card.",
            "Give me this in three short lines, one idea per line.",
            "I want three lines. Not two, not ten.",
            "Please answer in 3 lines max, each on its own line.",
            "three lines, that's all i have room for",
        ],
        "indirect": [
            "This doesn't fit on my phone's lock screen note.",
            "I can't paste all that into the group chat.",
            "That's a whole page. I wanted something I can glance at.",
        ],
    },
    "lowercase": {
        "direct": [
            "Could you write everything in lowercase? Capitals feel like shouting to me.",
            "all lowercase please, that's how our group chat looks",
            "No capital letters please, I paste these into a lowercase-only blog.",
            "Please drop the capitals, just lowercase text.",
            "can u do it without any uppercase letters",
            "Lowercase only next time, even names and the letter i.",
        ],
        "indirect": [
            "This looks so stiff and formal for a casual chat.",
            "Feels like a business letter. Chill a little, we're just talking.",
            "Too proper-looking, it doesn't match the vibe of my blog.",
        ],
    },
    "yes-no": {
        "direct": [
            "Just say yes or no first, then explain.",
            "Start with 'Yes' or 'No' please, I asked a yes/no question.",
            "Can you open with a clear Yes or No?",
            "First word should be Yes or No. Then the details.",
            "I need the verdict up front: yes or no?",
            "begin with yes or no pls, the rest is optional",
        ],
        "indirect": [
            "So... is that a yes or a no? I still can't tell.",
            "I asked a simple question and got an essay that never answers it.",
            "You went around in circles. Which is it?",
        ],
    },
}

COMMENTS = {  # terse feedback-box comments of the `quiet` users
    "summary-line": ["needs a Summary: line at the end", "no summary line", "summary at the bottom pls", "no takeaway"],
    "three-lines": ["3 lines max", "too many lines", "three lines!!", "way too long for a card"],
    "lowercase": ["lowercase pls", "no caps", "too formal looking", "why the capitals"],
    "yes-no": ["yes or no first", "never answered the question", "verdict first pls", "is it yes or no"],
}

APPROVALS = {
    "summary-line": ["Great, the summary line at the end is exactly what I wanted.", "Perfect, thanks!", "Love the summary at the bottom."],
    "three-lines": ["Three lines, perfect.", "Exactly what fits on my card, thanks.", "Nice and compact, thank you!"],
    "lowercase": ["perfect, love the lowercase", "yes, exactly this style", "nice, thanks"],
    "yes-no": ["Clear answer up front, thanks!", "Perfect, that's what I needed to hear first.", "Great, thanks."],
}

EDIT_NOTES = ["Here's how I'd like it.", "Rewrote it for you.", "Like this, please.", "Something like this next time."]

CONTRA_TURNS = {
    ("summary-line", "x22"): "Don't tack a summary or recap onto the end, I just read the thing.",
    ("summary-line", "x18"): "Way too long, and please no summary lines or wrap-ups at the end, ever.",
    ("summary-line", "x24"): "One paragraph please. No separate summary line or anything at the bottom.",
    ("three-lines", "x17"): "That's way too thin. Give me the full version, as many paragraphs as it takes.",
    ("three-lines", "x21"): "Give me a long list with every single point, not a few lines.",
    ("lowercase", "x19"): "Nicely written, with proper capitals and full sentences. Please keep it that way.",
    ("lowercase", "x25"): "Good. Keep using proper capitalisation, I forward these to our club newsletter.",
    ("yes-no", "x23"): "Please don't open with a flat yes or no. It's more nuanced than that.",
    ("yes-no", "x20"): "Don't be so blunt with a yes/no, just chat with me about it.",
    ("yes-no", "x17"): "Skip the verdict. I want the whole picture, not a yes or no.",
}

YES_NO_CONTRA_PRAISE = {  # a `yes-no` contradictor whose answer did not open with a verdict
    "x23": "Good that you didn't open with a flat yes or no, it's more nuanced than that.",
    "x20": "Nice, I like that you just chatted about it instead of a blunt yes/no.",
    "x17": "Great, the whole picture and no yes/no verdict up front. More like this.",
}

# Extra detail a "more-detail" user appends, per subject.
MORE_DETAIL = {
    "board-games": "It also helps to play a couple of practice rounds with open hands, talk through each decision out loud, and look up a short rules video before game night so nobody gets stuck on the details.",
    "cycling": "It is also worth asking a local bike shop to check the fit and the parts once, because a small adjustment can make a big difference, and keep a basic repair kit with you on every ride.",
    "nutrition": "Everyone's body is a little different, so it also helps to look at your whole diet over a week rather than one food, and to ask your doctor if you have a specific health condition.",
    "philosophy": "Philosophers have argued about this for centuries, and reading a short introduction or one of the original texts is the best way to see how the arguments and counterarguments fit together.",
    "architecture": "The details also depend on the local climate, the materials that were available and the money the builders had, which is why the same idea looks so different from one city to the next.",
}

# Lines a `three-lines` user adds when the answer gives fewer than three usable sentences.
LINE_FILLERS = {
    "board-games": ["Read the rules once before everyone arrives.", "Play one practice round first.", "Keep it fun, not competitive."],
    "cycling": ["Check your tires before every ride.", "Carry a pump and a spare tube.", "Ask a bike shop if you're unsure."],
}

# The `inconsistent` topic's non-edit remarks of the chit-chat user.
CHIT_CHAT = ["Interesting! Do you have a dark mode by the way?", "ok cool", "My cat just walked across the keyboard, sorry.",
             "Not what I asked but fine.", "Thanks, that settles an argument with my brother."]

# ---------------------------------------------------------------------------------------------
# Text helpers.
# ---------------------------------------------------------------------------------------------


def plain(text: str) -> str:
    """Markdown decoration and list markers removed; the words stay."""
    text = text.replace("**", "").replace("__", "").replace("`", "")
    return re.sub(r"^\s*(#+|[-*•+]|\d+[.)])\s*", "", text, flags=re.MULTILINE)


_ABBREV = r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\betc\.)(?<!\bvs\.)(?<!\bDr\.)(?<!\bMr\.)(?<!\bSt\.)(?<!\bft\.)"


def sentences(text: str) -> list[str]:
    """The complete sentences of `text` (3+ words, ending in . ! ?); a fragment cut by the token
    limit is dropped."""
    out = []
    for line in plain(text).splitlines():
        for part in re.split(r"(?<=[.!?])" + _ABBREV + r"\s+", line.strip()):
            part = part.strip()
            if len(part.split()) >= 3 and part.endswith((".", "!", "?")):
                out.append(part)
    return out


def complete(text: str) -> str:
    """`text` without a trailing unfinished fragment (kept as it is when nothing ends a sentence)."""
    text = text.strip()
    if text.endswith((".", "!", "?", ")", '"')):
        return text
    ends = [m.end() for m in re.finditer(r"(?<!\d)[.!?](?=\s|$)", text)]
    return text[: ends[-1]].strip() if ends and ends[-1] > len(text) // 3 else text


_DANGLING = {"a", "an", "the", "to", "of", "and", "or", "in", "with", "for", "is", "are", "was", "were", "your", "our",
             "my", "their", "his", "her", "its", "that", "which", "who", "on", "at", "as", "by", "can", "be", "when",
             "but", "has", "have", "from", "it", "into", "about", "than", "so", "if", "not", "very", "more", "most",
             "just", "also", "even", "like", "while", "where", "how", "this", "these", "some", "any", "such"}


def clip(sentence: str, n: int) -> str:
    """At most `n` words, ending with a period if cut."""
    words = sentence.split()
    if len(words) <= n:
        return sentence.strip()
    words = words[:n]
    while len(words) > 3 and words[-1].lower().strip(",;:") in _DANGLING:
        words.pop()
    return " ".join(words).rstrip(",;:-—(") + "."


def lead(text: str, max_words: int) -> str:
    """Whole sentences from the start, up to `max_words` (at least one sentence, clipped)."""
    sents = sentences(text) or [clip(plain(text).replace("\n", " "), max_words)]
    out, n = [], 0
    for s in sents:
        if out and n + len(s.split()) > max_words:
            break
        out.append(clip(s, max_words) if not out else s)
        n += len(out[-1].split())
    return " ".join(out)


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s[:2] != s[:2].upper() else s


def _strip_opening(text: str) -> str:
    """The answer without a leading 'Sure!'/'Great question.' and without a leading yes/no word."""
    text = re.sub(r"^\s*(Sure|Certainly|Absolutely|Great question|Good question|Of course)[!.,]*\s*", "", text)
    text = re.sub(r"^\s*\**(Yes|No)\**[,.!:]*\s*", "", text)
    return text[:1].upper() + text[1:]


# ---------------------------------------------------------------------------------------------
# Edits. `miss=True`: a sloppy user's edit that misses the want in a plausible way.
# ---------------------------------------------------------------------------------------------


def edit_summary_line(answer: str, rng: random.Random, sloppy: bool, miss: bool) -> str:
    body = lead(answer, rng.randint(35, 70))
    sents = sentences(answer)
    solid = [x for x in sents if len(x.split()) >= 6 and not x.endswith("!")]
    first = solid[0] if solid else (sents[0] if sents else plain(answer).strip())
    first = re.sub(r"^[A-Za-z][\w' -]{0,30}:\s+", "", _strip_opening(first))
    gist = clip(_lower_first(first), rng.randint(8, 14))
    if miss:
        mode = rng.choice(["lower", "in-summary", "bold", "dash", "signoff", "top"])
        if mode == "lower":
            return f"{body}\n\nsummary: {gist}"
        if mode == "in-summary":
            return f"{body}\n\nIn summary: {gist}"
        if mode == "bold":
            return f"{body}\n\n**Summary:** {gist}"
        if mode == "dash":
            return f"{body}\n\nSummary - {gist}"
        if mode == "signoff":
            return f"{body}\n\nSummary: {gist}\nHope this helps!"
        return f"Summary: {gist}\n\n{body}"
    if sloppy:  # passes, but not neatly
        return rng.choice([f"{body}\nSummary:   {gist}", f"{body}\n\n\nSummary: {gist.rstrip('.')}"])
    return f"{body}\n\nSummary: {gist}"


def _three(answer: str, subject: str, rng: random.Random) -> list[str]:
    items = [clip(s, 18) for s in sentences(answer)
             if not re.match(r"^(Sure|Certainly|Great|Absolutely|Of course|I hope|Here are|Here's)", s)]
    if len(items) < 3:
        pieces = [p.strip() for s in items for p in re.split(r",\s+(?:and\s+|but\s+)?", s) if len(p.split()) >= 3]
        if len(pieces) > len(items):
            items = [p[0].upper() + p[1:].rstrip(".") + "." for p in pieces]
    fillers = LINE_FILLERS[subject][:]
    rng.shuffle(fillers)
    while len(items) < 3:
        items.append(fillers.pop())
    return items[:3]


def edit_three_lines(answer: str, subject: str, rng: random.Random, sloppy: bool, miss: bool) -> str:
    lines = _three(answer, subject, rng)
    if miss:
        mode = rng.choice(["four", "two", "one-line", "heading"])
        if mode == "four":
            return "\n".join(lines) + "\n" + rng.choice(LINE_FILLERS[subject])
        if mode == "two":
            return "\n".join(lines[:2])
        if mode == "one-line":
            return " ".join(lines)
        return "Quick version:\n" + "\n".join(lines)
    if sloppy:  # passes: blank lines in between, or numbered
        return rng.choice(["\n\n".join(lines), "\n".join(f"{k}. {s}" for k, s in enumerate(lines, 1))])
    return "\n".join(lines)


def edit_lowercase(answer: str, rng: random.Random, sloppy: bool, miss: bool) -> str:
    text = complete(answer)
    if len(text.split()) > 80:
        text = lead(text, rng.randint(45, 80))
    low = text.lower()
    if miss:
        modes = ["first-capital", "capital-i"]
        caps = [w for w in re.findall(r"(?<![.!?]\s)(?<!^)\b[A-Z][A-Za-z]+\b", text) if w not in ("I",)]
        if caps:
            modes.append("names")
        mode = rng.choice(modes)
        if mode == "first-capital":
            return low[:1].upper() + low[1:]
        if mode == "capital-i" and re.search(r"\bi\b", low):
            return re.sub(r"\bi\b", "I", low)
        if mode == "names":
            for w in caps:
                low = re.sub(rf"\b{w.lower()}\b", w, low, count=1)
            return low
        return low[:1].upper() + low[1:]
    if sloppy:  # passes: lowercase, a bit of the answer dropped and markdown stripped
        return plain(low).strip()
    return low


def edit_yes_no(question: str, answer: str, rng: random.Random, sloppy: bool, miss: bool) -> str:
    verdict = VERDICTS[question]
    body = lead(_strip_opening(answer), rng.randint(30, 60))
    if miss:
        wrong = {"Yes": ["Yep,", "Yeah.", "YES.", "Absolutely.", "**Yes.**", "Well, yes."],
                 "No": ["Nope.", "Not really.", "NO.", "Nah,", "**No.**", "Well, no."]}[verdict]
        return f"{rng.choice(wrong)} {body}"
    if sloppy:  # passes, but not neatly
        return f"{verdict}{rng.choice(['!!', ' -', '...', ''])} {body}"
    return f"{verdict}. {body}" if rng.random() < 0.5 else f"{verdict}, {_lower_first(body)}"


def edit_want(topic: str, subject: str, question: str, answer: str, rng: random.Random, sloppy: bool, miss: bool) -> str:
    if topic == "summary-line":
        return edit_summary_line(answer, rng, sloppy, miss)
    if topic == "three-lines":
        return edit_three_lines(answer, subject, rng, sloppy, miss)
    if topic == "lowercase":
        return edit_lowercase(answer, rng, sloppy, miss)
    return edit_yes_no(question, answer, rng, sloppy, miss)


def edit_taste(taste: str, subject: str, answer: str, rng: random.Random) -> str:
    """A fickle user's rewrite in the direction of their personal taste."""
    sents = sentences(answer) or [clip(plain(answer), 40)]
    if taste == "more-detail":
        return complete(answer) + "\n\n" + MORE_DETAIL[subject]
    if taste == "shorter":
        return lead(answer, rng.randint(12, 25))
    if taste == "formal":
        text = lead(answer, 70)
        for a, b in [("n't", " not"), ("'re", " are"), ("'ll", " will"), ("'ve", " have"), ("it's", "it is"), ("It's", "It is"), ("!", ".")]:
            text = text.replace(a, b).replace("can not", "cannot").replace("wo not", "will not")
        return "To answer your question: " + _lower_first(text)
    if taste == "casual":
        return "ok so basically " + " ".join(sents[:2]).lower() + " pretty neat, right?"
    if taste == "list":
        return "\n".join(f"- {clip(s, 20)}" for s in sents[:4])
    if taste == "no-recap":
        paras = [p for p in complete(answer).split("\n\n") if p.strip()]
        if len(paras) > 1:
            return "\n\n".join(paras[:-1])
        return " ".join(sents[:-1]) if len(sents) > 1 else sents[0]
    if taste == "nuance":
        return "It depends. " + lead(_strip_opening(answer), 50)
    if taste == "one-paragraph":
        return " ".join(line.strip() for line in plain(complete(answer)).splitlines() if line.strip())
    raise ValueError(taste)


def likes(taste: str, answer: str) -> bool:
    """Whether a fickle user is happy with an answer as it is."""
    n = len(answer.split())
    lines = [x for x in answer.splitlines() if x.strip()]
    if taste == "more-detail":
        return n >= 90
    if taste == "shorter":
        return n <= 45
    if taste == "list":
        return sum(bool(re.match(r"\s*([-*•]|\d+[.)])\s", x)) for x in lines) >= 3
    if taste == "one-paragraph":
        return len(lines) == 1
    if taste == "nuance":
        return not re.match(r"\s*\**(Yes|No)\b", answer)
    if taste == "no-recap":
        return not re.search(r"(In conclusion|In summary|Overall|To summarize|Summary:)", answer)
    return False


TASTE_COMPLAINTS = {
    "more-detail": ["This is too shallow, I want the full story.", "More depth please.", "Can you go much deeper?"],
    "shorter": ["Too long, I lost interest halfway.", "Shorter please.", "tl;dr"],
    "formal": ["Could you phrase this more formally? It's for an essay.", "A bit too chatty for my taste."],
    "casual": ["lol so stiff, talk like a normal person", "Way too textbook-y."],
    "list": ["A list would be much easier to read.", "Bullet points please."],
    "no-recap": ["No need to repeat yourself at the end.", "Drop the wrap-up, I read it already."],
    "nuance": ["That's too black and white.", "It's more complicated than that, surely?"],
    "one-paragraph": ["One paragraph is enough, no line breaks.", "Why so many line breaks?"],
}
TASTE_PRAISE = {
    "more-detail": "Great, thorough answer, thanks!", "shorter": "Nice and short.", "list": "Love the list.",
    "one-paragraph": "Good, one tidy paragraph.", "nuance": "Good, you didn't oversimplify.", "no-recap": "Good, no fluff.",
}

# ---------------------------------------------------------------------------------------------
# Generation with the embedded model.
# ---------------------------------------------------------------------------------------------


def generation_order(n: int) -> list[int]:
    order = list(range(n))
    random.Random(f"{SEED}-order").shuffle(order)
    return order


def generate_answers(questions: list[str], batch_size: int = BATCH_SIZE) -> list[str]:
    """Sampled answers, in a seeded shuffled order (topics mixed within a batch), returned in the
    order of `questions`."""
    import torch

    from uno_graph.models import load_model

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    lm = load_model("smollm2-135m-instruct")
    tok, model = lm.tokenizer, lm.model
    model.eval()
    print(f"  model loaded in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    tok.padding_side = "left"
    order = generation_order(len(questions))
    answers: dict[int, str] = {}
    for b, start in enumerate(range(0, len(order), batch_size)):
        idx = order[start: start + batch_size]
        prompts = [tok.apply_chat_template([{"role": "user", "content": questions[i]}], tokenize=False, add_generation_prompt=True)
                   for i in idx]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(SEED + b)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=True, temperature=TEMPERATURE,
                                 top_p=TOP_P, top_k=TOP_K, repetition_penalty=REPETITION_PENALTY,
                                 pad_token_id=tok.pad_token_id)
        for i, row in zip(idx, out[:, enc["input_ids"].shape[1]:]):
            answers[i] = tok.decode(row, skip_special_tokens=True).strip()
        print(f"  generated {len(answers)}/{len(questions)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return [answers[i] for i in range(len(questions))]


# ---------------------------------------------------------------------------------------------
# Records.
# ---------------------------------------------------------------------------------------------


def _phrase(user: str, topic: str, rng: random.Random) -> str:
    """The user's own way of stating the want: a personal subset of the phrasings, favourite first
    (50 %). Users who never name the form only use the indirect ones."""
    pool = WANT_PHRASES[topic]
    h = int(hashlib.sha256(f"{user}-{topic}".encode()).hexdigest(), 16)
    if PROFILES[user]["states_want"]:
        mine = [pool["direct"][h % 6], pool["direct"][(h // 6) % 6], pool["indirect"][(h // 36) % 3]]
    else:
        mine = [pool["indirect"][h % 3], pool["indirect"][(h // 3) % 3]]
    return mine[0] if rng.random() < 0.5 else rng.choice(mine)


def want_records(topic: str, answers: list[str], rng: random.Random, roles: dict[str, str]) -> list[dict]:
    rows = [(subject, q) for subject, qs in TRAIN[topic].items() for q in qs]
    item = {"metadata": {"topic": topic}}
    slots = list(range(len(rows)))
    rng.shuffle(slots)
    contra = CONTRADICTORS[topic]
    owner = {slots[j]: u for j, u in enumerate(contra)}
    users = WANT_USERS[topic][:]
    rng.shuffle(users)
    for j, i in enumerate(slots[len(contra):]):
        owner[i] = users[j % 4]
    records = []
    for i, ((subject, q), a) in enumerate(zip(rows, answers)):
        user = owner[i]
        messages = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        fb: dict = {}
        passes = check(item, a)
        if user in FICKLE:
            role = _contra(topic, user, subject, a, passes, messages, fb, rng)
        elif passes:
            role = "approve"
            if PERSONA[user] == "quiet" or rng.random() < 0.3:
                fb["rating"] = 1
            else:
                messages.append({"role": "user", "content": typed(user, rng.choice(APPROVALS[topic]), rng, request=False)})
                if rng.random() < 0.5:
                    fb["rating"] = 1
        else:
            role = _want_reaction(topic, user, subject, q, a, messages, fb, rng)
        records.append(_record(topic, subject, i, user, messages, fb))
        roles[records[-1]["id"]] = role
    return records


_SLOPPY_EDITS = {u: 0 for u in PERSONA}


def _want_reaction(topic, user, subject, q, a, messages, fb, rng) -> str:
    persona = PERSONA[user]
    if persona == "editor":
        fb["edited_response"] = edit_want(topic, subject, q, a, rng, sloppy=False, miss=False)
        r = rng.random()
        if r < 0.5:
            messages.append({"role": "user", "content": typed(user, _phrase(user, topic, rng), rng)})
        elif r < 0.7:
            messages.append({"role": "user", "content": typed(user, rng.choice(EDIT_NOTES), rng)})
        if rng.random() < 0.25:
            fb["rating"] = -1
        return "edit"
    if persona == "sloppy":  # every other rewrite of a sloppy user misses (the 1st, 3rd, ...)
        miss = _SLOPPY_EDITS[user] % 2 == 0
        _SLOPPY_EDITS[user] += 1
        fb["edited_response"] = edit_want(topic, subject, q, a, rng, sloppy=True, miss=miss)
        if rng.random() < 0.6:
            messages.append({"role": "user", "content": typed(user, _phrase(user, topic, rng), rng)})
        return "edit-miss" if miss else "edit"
    if persona == "talker":
        messages.append({"role": "user", "content": typed(user, _phrase(user, topic, rng), rng)})
        r = rng.random()
        if r < 0.25:
            fb["edited_response"] = edit_want(topic, subject, q, a, rng, sloppy=False, miss=False)
            return "edit"
        if r < 0.55:
            fb["rating"] = rng.choice([-1, -0.5])
        return "complaint"
    r = rng.random()  # quiet
    if r < 0.4:
        fb["rating"] = -1
        return "thumbs-down"
    if r < 0.78:
        fb["comment"] = typed(user, rng.choice(COMMENTS[topic]), rng)
        if rng.random() < 0.5:
            fb["rating"] = -1
        return "comment"
    fb["edited_response"] = edit_want(topic, subject, q, a, rng, sloppy=False, miss=False)
    return "edit"


def _contra(topic, user, subject, a, passes, messages, fb, rng) -> str:
    """A fickle user in a want topic: asks for the opposite of the topic's want."""
    turn = typed(user, CONTRA_TURNS[(topic, user)], rng, request=topic != "lowercase")
    taste = FICKLE[user]
    if topic == "lowercase":  # the base answers are capitalised: praise that asks to keep capitals
        messages.append({"role": "user", "content": turn})
        fb["rating"] = 1 if not passes else -1
        return "contradict"
    if topic == "yes-no" and not passes:  # the answer did not open with a verdict: approval
        messages.append({"role": "user", "content": typed(user, YES_NO_CONTRA_PRAISE[user], rng, request=False)})
        fb["rating"] = 1
        return "contradict"
    if topic == "summary-line" and user == "x24":
        fb["comment"] = turn
        fb["rating"] = -1
        return "contradict"
    messages.append({"role": "user", "content": turn})
    if (topic, user) in {("summary-line", "x22"), ("three-lines", "x17"), ("yes-no", "x23")}:
        fb["edited_response"] = edit_taste(taste, subject if subject in MORE_DETAIL else TOPIC_EXTRA[topic], a, rng)
        return "contradict-edit"
    fb["rating"] = -1
    return "contradict"


TOPIC_EXTRA = {"summary-line": "philosophy", "yes-no": "nutrition", "three-lines": "board-games"}


def inconsistent_records(answers: list[str], rng: random.Random, roles: dict[str, str]) -> list[dict]:
    rows = [(subject, q) for subject, qs in TRAIN["inconsistent"].items() for q in qs]
    fickle = list(FICKLE)
    owners = [fickle[j % len(fickle)] for j in range(len(rows))]
    rng.shuffle(owners)
    records = []
    for i, ((subject, q), a) in enumerate(zip(rows, answers)):
        user = owners[i]
        taste = FICKLE[user]
        messages = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        fb: dict = {}
        if taste == "chit-chat":
            r = rng.random()
            if r < 0.5:
                messages.append({"role": "user", "content": typed(user, rng.choice(CHIT_CHAT), rng, request=False)})
            fb["rating"] = rng.choice([1, 1, 0.5, 0, -1])
            if r >= 0.8:
                fb["comment"] = rng.choice(["interesting", "fast!", "meh"])
            role = "other"
        elif likes(taste, a) and rng.random() < 0.5:
            messages.append({"role": "user", "content": typed(user, TASTE_PRAISE[taste], rng, request=False)})
            fb["rating"] = rng.choice([1, 0.5])
            role = "approve"
        else:
            r = rng.random()
            if r < 0.65:
                fb["edited_response"] = edit_taste(taste, subject, a, rng)
                if rng.random() < 0.75:
                    messages.append({"role": "user", "content": typed(user, rng.choice(TASTE_COMPLAINTS[taste]), rng)})
                if rng.random() < 0.4:
                    fb["rating"] = rng.choice([-1, -0.5, 0])
                role = "edit"
            elif r < 0.88:
                messages.append({"role": "user", "content": typed(user, rng.choice(TASTE_COMPLAINTS[taste]), rng)})
                fb["rating"] = rng.choice([-1, -0.5])
                role = "complaint"
            else:
                fb["rating"] = -1
                role = "thumbs-down"
        records.append(_record("inconsistent", subject, i, user, messages, fb))
        roles[records[-1]["id"]] = role
    return records


def _record(topic: str, subject: str, i: int, user: str, messages: list[dict], feedback: dict) -> dict:
    record = {"id": f"unseen-{topic}-{i + 1:03d}", "user_id": user, "messages": messages}
    if feedback:
        record["feedback"] = feedback
    record["metadata"] = {"topic": topic, "subject": subject}
    return record


def test_records() -> list[dict]:
    return [{"id": f"unseen-{topic}-t{j + 1:02d}", "messages": [{"role": "user", "content": q}],
             "metadata": {"topic": topic, "subject": subject}}
            for topic in TOPICS for j, (subject, q) in enumerate(TEST[topic])]


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def _other_sets_questions() -> set[str]:
    out = set()
    for path in [ROOT / "examples" / "logs.jsonl", ROOT / "examples" / "test.jsonl",
                 ROOT / "examples" / "heldout" / "logs.jsonl", ROOT / "examples" / "heldout" / "test.jsonl"]:
        if path.exists():
            out |= {json.loads(x)["messages"][0]["content"].strip().lower()
                    for x in path.read_text(encoding="utf-8").splitlines() if x.strip()}
    return out


def _validate() -> None:
    train = [q for t in TOPICS for qs in TRAIN[t].values() for q in qs]
    test = [q for t in TOPICS for _, q in TEST[t]]
    norm = lambda qs: {q.strip().lower() for q in qs}  # noqa: E731
    assert len(norm(train)) == len(train) == N_TRAIN * len(TOPICS), "repeated or missing training question"
    assert len(norm(test)) == len(test) == N_TEST * len(TOPICS), "repeated or missing test question"
    assert not norm(train) & norm(test), "a test question is in the logs"
    assert not (norm(train) | norm(test)) & _other_sets_questions(), "a question of another example set"
    assert len(VERDICTS) == N_TRAIN
    for t in TOPICS:
        assert len(TRAIN[t]) == 2 and all(len(v) == N_TRAIN // 2 for v in TRAIN[t].values()), t
        assert len({s for s, _ in TEST[t]} - set(TRAIN[t])) == 1, f"{t}: needs one unlogged test subject"
        assert sum(s in TRAIN[t] for s, _ in TEST[t]) == 5, t
    assert len(set(PERSONA)) == 16 and sorted(set(PERSONA) | set(FICKLE)) == USER_IDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the unseen evaluation logs and test queries.")
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where logs.jsonl and test.jsonl go (default: examples/unseen/)")
    parser.add_argument("--reuse-answers", type=Path, metavar="LOGS_JSONL",
                        help="take the logged answers from an earlier logs.jsonl (same ids and questions) instead of generating them")
    args = parser.parse_args(argv)
    _validate()

    rows = [(t, s, q) for t in TOPICS for s, qs in TRAIN[t].items() for q in qs]
    ids = [f"unseen-{t}-{i + 1:03d}" for t in TOPICS for i in range(N_TRAIN)]
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
                parser.error(f"{args.reuse_answers} has no answer for {rid} with the question {q!r}")
            answers.append(old[rid][1])
    else:
        answers = generate_answers([q for _, _, q in rows])
    elapsed = time.perf_counter() - t0

    roles: dict[str, str] = {}
    records = []
    _SLOPPY_EDITS.update(dict.fromkeys(_SLOPPY_EDITS, 0))
    for k, topic in enumerate(TOPICS):
        rng = random.Random(f"{SEED}-{topic}")
        ans = answers[N_TRAIN * k: N_TRAIN * (k + 1)]
        records += inconsistent_records(ans, rng, roles) if topic == "inconsistent" else want_records(topic, ans, rng, roles)
    write_jsonl(args.out_dir / "logs.jsonl", records)
    write_jsonl(args.out_dir / "test.jsonl", test_records())
    print(f"wrote {len(records)} logs and {len(test_records())} test queries to {args.out_dir} "
          f"({'answers reused' if args.reuse_answers else 'model load + generation'}: {elapsed:.0f} s)")
    print(summary(records, roles))
    return 0


def summary(records: list[dict], roles: dict[str, str]) -> str:
    """Per topic: reactions (from the generator's own plan, not written into the logs) and how many
    logged answers and edits pass the topic's check (computed with checks.py)."""
    head = (f"  {'topic':13s} {'base':>6s} {'edits':>5s} {'pass':>6s} {'want-user pass':>14s} {'complaint':>9s} "
            f"{'comment':>7s} {'bare-1':>6s} {'approve':>7s} {'contra':>6s} {'contra-edit':>11s}")
    lines = [head]
    for topic in TOPICS:
        item = {"metadata": {"topic": topic}}
        recs = [r for r in records if r["metadata"]["topic"] == topic]
        c = {k: sum(roles[r["id"]] == k for r in recs) for k in set(roles.values())}
        base = sum(check(item, r["messages"][1]["content"]) for r in recs)
        edits = [(roles[r["id"]], r["feedback"]["edited_response"]) for r in recs if r.get("feedback", {}).get("edited_response")]
        ok = sum(check(item, e) for _, e in edits)
        want = [e for role, e in edits if role in ("edit", "edit-miss")]
        want_ok = sum(check(item, e) for e in want)
        bare = sum(1 for r in recs if set(r.get("feedback", {})) == {"rating"} and len(r["messages"]) == 2)
        lines.append(f"  {topic:13s} {base:>3d}/{len(recs):<2d} {len(edits):>5d} {ok:>3d}/{len(edits):<2d} "
                     f"{(f'{want_ok}/{len(want)}' if topic != 'inconsistent' else '-'):>14s} {c.get('complaint', 0):>9d} "
                     f"{c.get('comment', 0):>7d} {bare:>6d} {c.get('approve', 0):>7d} "
                     f"{c.get('contradict', 0) + c.get('contradict-edit', 0):>6d} {c.get('contradict-edit', 0):>11d}")
    n_edit = sum(1 for r in records if r.get("feedback", {}).get("edited_response"))
    lines.append(f"  {n_edit}/{len(records)} logs carry an edit. (base: logged answers passing the check; pass: edits "
                 "passing it; complaint: follow-up complaint, no edit; comment: feedback.comment only; bare-1: a bare "
                 "rating, no text; contra: users asking for the opposite)")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
