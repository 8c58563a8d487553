""".venv/bin/python examples/reserve/make_reserve_logs.py [--reuse-answers examples/reserve/logs.jsonl]

Writes the fifth evaluation-only set: `examples/reserve/logs.jsonl` (110 user logs, 22 per topic)
and `examples/reserve/test.jsonl` (8 test queries per topic, none of them a logged question). It is
kept sealed for one final evaluation: never tune anything on it. The topics and their checks
(`examples/reserve/checks.py`) were committed before this script generated anything.

How the procedure differs from the four earlier generators (`examples/make_example_logs.py`,
`examples/heldout/`, `examples/unseen/`, `examples/sealed/`):

- Wants and subjects are new: a markdown table (wine, smartphones); the first word `You` (first
  aid, chess); a `- [ ]` checklist (wedding planning, beekeeping); a last line `Next step:`
  (woodworking, sewing); inconsistent (economics, meditation). The test set adds a third, unlogged
  subject per topic (tea, skiing, volunteering, watercolor, weather).
- Questions are one user turn in four styles: plain, with a persona or a constraint ("As a nurse
  working night shifts, ..."), very short ("tannins?"), or with a pasted snippet (a label, a
  pattern, a chess game, a notification) on lines of its own.
- Decoding: on-policy answers of the embedded SmolLM2-135M-Instruct (`uno_graph.models.load_model`,
  the question through the chat template, left padding), sampled with temperature 0.3, top_k 40,
  top_p off, repetition_penalty 1.1, max_new_tokens 128, in batches of 6 over the questions
  interleaved by topic (t1 q1, t2 q1, ..., t5 q1, t1 q2, ...), with a seed per batch taken from a
  hash (`torch.manual_seed(sha256("reserve-batch-<b>")[:8])`) and `torch.set_num_threads(1)`. A
  trailing sentence cut by the token limit is removed before logging (kept whole when nothing
  else would remain).
- Logs arrive in a seeded shuffle (topics mixed, ids `reserve-0001` ...) and reactions are written
  in that arrival order, so a user's history has a direction. Users have opaque ids `acct_` and
  eight base-32 characters. Per want topic five recurring want users, one habit each: `rewriter`
  (rewrites the whole answer; a quarter of the rewrites miss the want), `partial` (keeps the
  answer and adds only the missing part, correct but partial; some miss), `late` (a vague first
  complaint, an assistant turn asking what to change, and only then the want; sometimes a rewrite
  too), `lenient` (often a thumbs-up on an answer that misses the want; otherwise a mild wish in
  the feedback box or a rewrite), `switcher` (asks for shorter answers in their first logs and for
  the topic's want in the later ones). Plus four one-off users per want topic: two who prefer the
  opposite of the want and two drive-by reactions unrelated to form. `inconsistent` is written by
  six recurring users with a taste each (longer, shorter, simpler, more technical, numbered, one
  paragraph) who now and then ask for the opposite of their own taste.

Deterministic: fixed seeds, fixed batches, one thread; two runs give identical files.
`--reuse-answers OLD_LOGS` takes the logged answers from an earlier logs.jsonl (matched by topic and
question) and skips the model.
"""

from __future__ import annotations

import argparse
import base64
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

from checks import check  # noqa: E402  (examples/reserve/checks.py)

SEED = "reserve-v1"
BATCH_SIZE = 6
MAX_NEW_TOKENS = 128
TEMPERATURE = 0.3
TOP_K = 40
REPETITION_PENALTY = 1.1
N_TRAIN = 22
N_TEST = 8

TOPICS = ["table", "you-first", "checklist", "next-step", "inconsistent"]
WANT_TOPICS = TOPICS[:4]


class Ask(NamedTuple):
    """A question and what a user who rewrites the answer adds for it: table rows
    ("head|head;cell|cell;..."), an opening sentence, checklist items ("a;b;c") or a next step."""

    question: str
    extra: str | None = None


# ---------------------------------------------------------------------------------------------
# Questions: per topic two subjects of 11 logged questions each.
# ---------------------------------------------------------------------------------------------

TRAIN: dict[str, dict[str, list[Ask]]] = {
    "table": {
        "wine": [
            Ask("What wine goes with grilled salmon?",
                "Wine|Why it works;Pinot Noir|light red, soft tannins;Chardonnay|rich enough for the oily fish;Dry rosé|fresh, good outdoors"),
            Ask("tannins?",
                "Term|Meaning;Tannin|the drying feel from grape skins and oak;High tannin|Cabernet Sauvignon, Nebbiolo;Low tannin|Pinot Noir, Gamay"),
            Ask("As someone who only drinks sweet white wine, which reds should I try first?",
                "Red|Why try it;Lambrusco|fizzy and slightly sweet;Beaujolais|light and fruity;Zinfandel|ripe, jammy fruit"),
            Ask("The label says:\n\"Riesling Kabinett, Mosel, 8.5% vol.\"\nIs this wine sweet or dry?",
                "Label word|What it tells you;Kabinett|lightest ripeness level, often off-dry;8.5% vol.|low alcohol, so some sugar was left;Trocken|would mean dry (not on this label)"),
            Ask("How long does an opened bottle of wine keep in the fridge?",
                "Wine|Keeps;Light white or rosé|3-5 days;Full-bodied red|3-5 days, corked;Sparkling|1-3 days with a stopper"),
            Ask("I have $15 and need a bottle for a dinner party with roast chicken, what should I buy?",
                "Bottle|Why;Côtes du Rhône|cheap, good with roast meat;Unoaked Chardonnay|matches the chicken's richness;Beaujolais-Villages|light red, pleases most guests"),
            Ask("What is the difference between Champagne, Prosecco and Cava?",
                "Wine|Country|Method;Champagne|France|second fermentation in the bottle;Prosecco|Italy|tank method, fruitier;Cava|Spain|bottle method, cheaper"),
            Ask("Serving temperatures for red and white?",
                "Wine|Serve at;Sparkling|6-8 °C;Light white|8-10 °C;Full-bodied red|16-18 °C"),
            Ask("Why do some wines smell like vinegar, and is it still safe to drink?",
                "Smell|Cause;Vinegar|acetic acid after too much air;Wet cardboard|cork taint (TCA);Burnt match|sulfur, often fades in the glass"),
            Ask("As a beginner hosting a tasting night for six friends, in what order should we taste the wines?",
                "Order|Wine;1|sparkling;2|light whites;3|light reds;4|full-bodied reds"),
            Ask("Old World vs New World wine, what's the actual difference?",
                "Style|Old World|New World;Regions|France, Italy, Spain|USA, Australia, Chile;Labels|name the place|name the grape;Taste|earthier, more acidic|riper, fruitier"),
        ],
        "smartphones": [
            Ask("Should I buy a phone with 128 GB or 256 GB of storage?",
                "Storage|Enough for;128 GB|apps, photos, a few offline playlists;256 GB|lots of 4K video and big games;Cloud plan|an alternative to paying for more"),
            Ask("eSIM vs physical SIM?",
                "Feature|eSIM|Physical SIM;Switching carriers|in the settings|swap the card;Travel|buy a local plan online|buy a card locally;New phone|transfer needed|move the card"),
            Ask("My phone says this every morning:\n\"Storage almost full. Manage storage.\"\nWhat can I delete safely?",
                "Item|Safe to delete?;Cached app data|yes, it rebuilds;Downloaded podcasts and videos|yes;Old chat attachments|yes, after a backup;Photos|only after a backup"),
            Ask("As a student on a tight budget, is a refurbished iPhone a good idea?",
                "Option|Pros|Cons;Refurbished|cheaper, tested, warranty|possibly an older battery;New mid-range Android|new battery, full warranty|weaker camera;Private sale|cheapest|no warranty"),
            Ask("How do I make my phone battery last through the whole day?",
                "Setting|Saving;Lower screen brightness|large;Dark mode on OLED|medium;Background refresh off|medium;Location only while using the app|small to medium"),
            Ask("What do the different camera lenses on a phone actually do?",
                "Lens|Use;Main (wide)|everyday photos, best in low light;Ultra-wide|landscapes, small rooms;Telephoto|portraits, distant subjects"),
            Ask("My grandmother is getting her first smartphone, which features matter most for her?",
                "Feature|Why;Large screen|easier to read;Simple mode|fewer confusing icons;Emergency SOS|help with one button"),
            Ask("Is fast charging bad for the battery?",
                "Charging|Effect on the battery;Fast charging|a little more heat, small extra wear;Overnight to 100 %|more wear over the years;Optimized or 80 % limit|least wear"),
            Ask("5G worth it?",
                "Question|Answer;Speed|much faster where there is coverage;Coverage|still patchy outside cities;Battery|can drain faster"),
            Ask("The spec sheet says:\n\"IP68, 6.1-inch OLED, 4,000 mAh\"\nWhat do these numbers mean?",
                "Spec|Meaning;IP68|dust-tight, survives being submerged;6.1-inch OLED|screen size and type, deep blacks;4,000 mAh|battery capacity, about a day"),
            Ask("How do I move everything from my old Android phone to a new iPhone?",
                "What|How;Contacts and photos|the Move to iOS app;WhatsApp chats|the transfer in WhatsApp's settings;Music and files|a cloud drive or a computer"),
        ],
    },
    "you-first": {
        "first-aid": [
            Ask("What should I do right after burning my hand on a hot pan?",
                "You should cool the burn under cool running water for a full 20 minutes."),
            Ask("nosebleed, head back or forward?",
                "You should lean forward, not back, and pinch the soft part of your nose for ten minutes."),
            Ask("As a new parent, what do I do if my baby is choking?",
                "You give up to five back blows between the shoulder blades, then five chest thrusts, and call emergency services if it does not clear."),
            Ask("My kid got stung and his arm looks like this:\n\"red, swollen, itchy, about the size of a coin\"\nIs that an allergic reaction?",
                "You are most likely looking at a normal local reaction; swelling of the face or trouble breathing would need an ambulance."),
            Ask("How do I tell if a cut needs stitches?",
                "You should get stitches if the cut gapes open, is deeper than about 6 mm, or keeps bleeding after ten minutes of pressure."),
            Ask("What goes in a basic first aid kit for a car?",
                "You need plasters, sterile dressings, a bandage, gloves, scissors, a foil blanket and a list of emergency numbers."),
            Ask("As a hiker who's often far from help, how do I treat a sprained ankle on the trail?",
                "You can strap the ankle firmly with a bandage and walk out slowly with poles if it can take your weight."),
            Ask("Someone fainted at work, what do I do?",
                "You lay them on their back, raise their legs and call for help if they do not come round within a minute."),
            Ask("CPR rate?",
                "You push hard and fast in the centre of the chest, 100 to 120 compressions a minute, about 5 cm deep."),
            Ask("I read this on a forum:\n\"put butter on a burn to soothe it\"\nIs that true?",
                "You should never put butter on a burn; it holds the heat in and raises the risk of infection."),
            Ask("When should I use the recovery position?",
                "You use the recovery position when someone is unconscious but breathing normally, so their airway stays open."),
        ],
        "chess": [
            Ask("How do I stop losing my queen early in the game?",
                "You should develop your knights and bishops first and bring the queen out only when it can't be chased around."),
            Ask("What's castling and when should I do it?",
                "You castle by moving the king two squares toward a rook and putting that rook next to it, usually within the first ten moves."),
            Ask("en passant?",
                "You can capture a pawn that has just moved two squares past yours as if it had moved one, but only on the very next move."),
            Ask("As an adult beginner with 20 minutes a day, how should I practice chess?",
                "You will improve fastest by solving tactics puzzles most days and playing one slow game a few times a week."),
            Ask("My game went:\n1. e4 e5 2. Qh5 Nc6 3. Bc4 Nf6 4. Qxf7#\nWhat happened?",
                "You were hit by the Scholar's Mate: the queen and bishop both attacked f7, the weakest square next to your king."),
            Ask("What does it mean to control the center?",
                "You control the center when your pawns and pieces occupy or attack the squares d4, d5, e4 and e5."),
            Ask("How do I checkmate with a king and rook against a lone king?",
                "You use the rook to cut the enemy king off along a rank or file and bring your own king up to push it to the edge."),
            Ask("Which opening should a beginner learn first?",
                "You'll do well with the Italian Game, because it teaches quick development, castling and fighting for the center."),
            Ask("stalemate vs checkmate?",
                "You give checkmate when the king is attacked and cannot escape; it is stalemate, a draw, when the side to move has no legal move and is not in check."),
            Ask("As someone who panics in blitz games, how do I manage my clock?",
                "You should play the opening quickly from memory and save your time for the moments when pieces start trading."),
            Ask("How are chess ratings like Elo calculated?",
                "You gain or lose points after each game depending on the result and on how much higher or lower your opponent's rating is."),
        ],
    },
    "checklist": {
        "wedding-planning": [
            Ask("What do we need to book first for a wedding next summer?",
                "venue and date;officiant;photographer;caterer, if the venue has none"),
            Ask("As a bride on a $5,000 budget, what can we cut without anyone noticing?",
                "printed invitations (send digital ones);favors;a third course;fresh flowers on every table"),
            Ask("guest list tips?",
                "set the maximum number first;list family, then friends, then plus-ones;agree on a rule for children;cut by groups, not one by one"),
            Ask("The venue contract says:\n\"Deposit non-refundable. Final numbers due 14 days prior.\"\nWhat should I check before signing?",
                "what happens to the deposit if the date moves;the cancellation terms;whether service and tax are included;the deadline for final numbers"),
            Ask("What should the best man do on the wedding day itself?",
                "hold the rings;keep the groom on schedule;give the speech;hand out the suppliers' final payments"),
            Ask("How far in advance should wedding invitations go out?",
                "save-the-dates 6-8 months before;invitations 8 weeks before;RSVP deadline 4 weeks before;chase missing replies a week after that"),
            Ask("As the maid of honor living abroad, how can I help plan from far away?",
                "set up a shared planning document;book a weekly video call;plan the bachelorette party;write the speech"),
            Ask("What goes in a wedding-day emergency kit?",
                "safety pins and a sewing kit;painkillers and plasters;phone charger;stain remover pen;tissues"),
            Ask("How do we make a seating plan without family drama?",
                "seat divorced parents at separate tables;put children near their parents;give everyone someone they know at the table;hand the plan to one trusted person on the day"),
            Ask("rain plan for an outdoor ceremony?",
                "book a tent or an indoor room as backup;set a decision time the day before;rent umbrellas;tell the photographer the backup spot"),
            Ask("What should we take care of in the week after the wedding?",
                "return rentals;pay the remaining suppliers;send thank-you notes;change names on documents if needed"),
        ],
        "beekeeping": [
            Ask("What equipment do I need to start my first beehive?",
                "a hive with frames;a bee suit or veil and gloves;a smoker;a hive tool;a package of bees or a nucleus colony"),
            Ask("As a city dweller with only a rooftop, can I keep bees?",
                "check local rules and ask the building owner;provide a water source close by;put up a windbreak;face the entrance away from walkways"),
            Ask("swarm season prep?",
                "inspect every 7-9 days;add space before they need it;look for queen cells;have a spare hive ready"),
            Ask("My inspection notes say:\n\"no eggs, no young larvae, bees loud and restless\"\nWhat does that mean?",
                "look again for eggs in good light;check for queen cells;give them a frame of eggs from another hive;order a new queen if none appears"),
            Ask("How do I get a beehive ready for winter?",
                "leave enough honey;treat for varroa mites in late summer;fit a mouse guard;tilt the hive so rain runs off"),
            Ask("How often should I inspect my hive in the first year?",
                "every 7-10 days in spring and summer;less often after the main flow;never in cold or rainy weather;keep notes each time"),
            Ask("What's the safest way to harvest honey without hurting the colony?",
                "take only capped frames;leave enough honey for the bees;put in a bee escape a day before;extract in a closed room"),
            Ask("As someone allergic to wasps, should I worry about bee stings?",
                "ask a doctor about an allergy test;carry an adrenaline pen if prescribed;wear a full suit;never inspect alone"),
            Ask("How do I check my bees for varroa mites?",
                "do a sugar roll or an alcohol wash;count the mites per 300 bees;check a sticky board under the hive;treat if there are more than about 3 per 100 bees"),
            Ask("bees dying in front of the hive, why?",
                "look for deformed wings (varroa);ask neighbors about pesticide spraying;check for robbing;send a sample to a bee lab"),
            Ask("What should I plant in my garden to help the bees?",
                "lavender;borage;clover;fruit trees;late flowers such as ivy or asters"),
        ],
    },
    "next-step": {
        "woodworking": [
            Ask("How do I stop wood from splitting when I drive a screw in?",
                "drill a pilot hole in a scrap piece and test the screw there."),
            Ask("As a renter with no garage, what woodworking can I do on a balcony?",
                "buy a small hand saw and a mitre box and build a simple box."),
            Ask("sanding grits order?",
                "sand one test board through 80, 120 and 180 grit and compare the feel."),
            Ask("The finish can says:\n\"Recoat after 4-6 hours. Full cure 30 days.\"\nWhen can I use the table?",
                "leave the table unused for a week, then use it gently with coasters until day 30."),
            Ask("What's the difference between hardwood and softwood for a first project?",
                "build your first project from pine and save the oak for the second one."),
            Ask("How do I glue two boards edge to edge so the joint holds?",
                "dry-fit the boards in the clamps before you open the glue."),
            Ask("What are the first five tools a beginner woodworker should buy?",
                "buy a tape measure, a square and a saw before anything else."),
            Ask("As a dad making a bookshelf with my 10-year-old, how do we keep it safe?",
                "set up one station per tool and go over the rules together before the first cut."),
            Ask("Why does my cut wander off the line when I use a handsaw?",
                "practice ten cuts on scrap, starting each one with a few light backward strokes."),
            Ask("Oil or polyurethane for a kitchen cutting board?",
                "wipe on food-safe mineral oil and repeat once a month."),
            Ask("chisel sharpening?",
                "flatten the back of the chisel on your coarsest stone before touching the bevel."),
        ],
        "sewing": [
            Ask("Why does my sewing machine thread keep bunching up underneath the fabric?",
                "rethread the top thread with the presser foot up and sew a line on a scrap."),
            Ask("As a beginner who only has a needle and thread, how do I fix a ripped seam?",
                "practice a backstitch on a scrap before you sew the real seam."),
            Ask("hem jeans?",
                "pin the new length while wearing the shoes you will wear with the jeans."),
            Ask("The pattern says:\n\"Sew with right sides together, 1.5 cm seam allowance, clip curves.\"\nWhat does that mean?",
                "mark the 1.5 cm line on your machine's plate with tape before you start."),
            Ask("What kind of needle should I use for stretchy knit fabric?",
                "buy a pack of ballpoint or stretch needles and test one on a scrap."),
            Ask("How do I sew on a button so it doesn't fall off in a week?",
                "sew the button over a pin to leave a shank, then wrap the thread around it."),
            Ask("What should I make as my very first sewing project?",
                "make a simple drawstring bag from cotton."),
            Ask("As someone who hates ironing, do I really need to press my seams?",
                "press one seam and compare it with an unpressed one."),
            Ask("How do I choose the right size when my measurements fall between two sizes on the chart?",
                "make a quick test version in the larger size and pin out the extra."),
            Ask("What's the difference between cotton, linen and polyester thread?",
                "buy one spool of all-purpose polyester thread in a neutral color."),
            Ask("How do I pre-wash fabric, and why?",
                "wash the fabric the way you will wash the finished piece, then dry and press it."),
        ],
    },
    "inconsistent": {
        "economics": [
            Ask("What causes inflation?"),
            Ask("As a small shop owner, why do interest rate rises affect my sales?"),
            Ask("GDP?"),
            Ask("The news said:\n\"The central bank held rates at 4.25% citing sticky core inflation.\"\nWhat does that mean?"),
            Ask("Why can't governments just print more money to pay off their debt?"),
            Ask("What is the difference between a recession and a depression?"),
            Ask("opportunity cost?"),
            Ask("How do tariffs affect the prices I pay in the shop?"),
            Ask("As a student, why does supply and demand matter in real life?"),
            Ask("What is a monopoly and why are they regulated?"),
            Ask("Why do currencies go up and down against each other?"),
        ],
        "meditation": [
            Ask("How do I start meditating if I can't sit still?"),
            Ask("As a nurse working night shifts, when is the best time for me to meditate?"),
            Ask("mantra?"),
            Ask("The app told me:\n\"Notice the thought, label it, return to the breath.\"\nWhat does labelling a thought mean?"),
            Ask("How long should a beginner meditate each day?"),
            Ask("Is it normal to fall asleep while meditating?"),
            Ask("What is a body scan meditation?"),
            Ask("Does meditation actually reduce stress, or is it a placebo?"),
            Ask("walking meditation?"),
            Ask("As a parent of two toddlers, how can I find time to meditate?"),
            Ask("What's the difference between mindfulness and meditation?"),
        ],
    },
}

# Test queries: (subject, question). Five on the logged subjects, three on a subject no log mentions.
TEST: dict[str, list[tuple[str, str]]] = {
    "table": [
        ("wine", "Which wines go well with spicy Thai food?"),
        ("wine", "As a guest bringing wine to a barbecue, should I pick red or white?"),
        ("smartphones", "What's the difference between OLED and LCD phone screens?"),
        ("smartphones", "phone case worth it?"),
        ("smartphones", "The shop offers:\n\"Plan A: 10 GB for $20. Plan B: unlimited for $35.\"\nWhich mobile plan should I pick?"),
        ("tea", "What's the difference between green, black and oolong tea?"),
        ("tea", "How long should I steep different kinds of tea?"),
        ("tea", "As a coffee drinker trying to cut down, which teas have the most caffeine?"),
    ],
    "you-first": [
        ("first-aid", "What should I do if someone near me has a seizure?"),
        ("first-aid", "bee sting, what now?"),
        ("chess", "How do I stop blundering my pieces?"),
        ("chess", "As a club player stuck at 1200, what should I study?"),
        ("chess", "What is a fork in chess?"),
        ("skiing", "How do I stop on skis as a complete beginner?"),
        ("skiing", "What should I wear for my first ski trip?"),
        ("skiing", "As a snowboarder trying skiing, what will feel different?"),
    ],
    "checklist": [
        ("wedding-planning", "What should we ask a wedding photographer before hiring them?"),
        ("wedding-planning", "hen party planning?"),
        ("beekeeping", "How do I catch a swarm that landed in my garden?"),
        ("beekeeping", "What should I feed my bees in early spring?"),
        ("beekeeping", "As a new beekeeper, what should I do on my first hive inspection?"),
        ("volunteering", "How do I find a good place to volunteer in my town?"),
        ("volunteering", "What should I bring to my first day volunteering at a food bank?"),
        ("volunteering", "As a retiree with free weekdays, how do I start volunteering?"),
    ],
    "next-step": [
        ("woodworking", "How do I fill gaps in a wood joint?"),
        ("woodworking", "router or jigsaw first?"),
        ("sewing", "How do I sew a straight line on a sewing machine?"),
        ("sewing", "As someone with a small flat, where can I set up a sewing corner?"),
        ("sewing", "The pattern envelope says:\n\"Notions: 1 invisible zipper, 22 cm\"\nHow do I put in an invisible zipper?"),
        ("watercolor", "What paper should I buy for watercolor painting?"),
        ("watercolor", "How do I stop my watercolor paintings from looking muddy?"),
        ("watercolor", "As a total beginner, which three watercolor paints should I start with?"),
    ],
    "inconsistent": [
        ("economics", "What is a budget deficit?"),
        ("economics", "stagflation?"),
        ("meditation", "How do I meditate when my mind won't stop racing?"),
        ("meditation", "As a runner, can I meditate while running?"),
        ("meditation", "What is loving-kindness meditation?"),
        ("weather", "How do weather forecasters predict rain?"),
        ("weather", "What causes thunder?"),
        ("weather", "As a gardener, how can I tell if frost is coming tonight?"),
    ],
}


def question_style(question: str) -> str:
    """snippet (a pasted text on lines of its own), short (at most four words), persona (a persona
    or a constraint), or plain."""
    if "\n" in question:
        return "snippet"
    if len(question.split()) <= 4:
        return "short"
    if re.match(r"As (a|an|the|someone)\b", question) or re.search(r"\$\d|my grandmother|I have \$", question):
        return "persona"
    return "plain"


# ---------------------------------------------------------------------------------------------
# Users.
# ---------------------------------------------------------------------------------------------

HABITS = ["rewriter", "partial", "late", "lenient", "switcher"]
HABIT_SHARE = {"rewriter": 4, "partial": 4, "late": 4, "lenient": 3, "switcher": 3}  # 18 of 22 logs
MOODS = ["longer", "shorter", "simpler", "technical", "numbered", "one-paragraph"]
OPPOSITE = {"longer": "shorter", "shorter": "longer", "simpler": "technical", "technical": "simpler",
            "numbered": "one-paragraph", "one-paragraph": "numbered"}
MOOD_SHARE = [4, 4, 4, 4, 3, 3]
SELF_CONTRADICTION = 0.25  # how often an `inconsistent` user asks for the opposite of their own taste


def _uid(name: str) -> str:
    digest = hashlib.sha256(f"{SEED}:{name}".encode()).digest()
    return "acct_" + base64.b32encode(digest).decode().lower()[:8]


WANT_USERS = {topic: {habit: _uid(f"{topic}/{habit}") for habit in HABITS} for topic in WANT_TOPICS}
HABIT = {uid: habit for users in WANT_USERS.values() for habit, uid in users.items()}
MOOD_USERS = {mood: _uid(f"mood/{mood}") for mood in MOODS}
MOOD = {uid: mood for mood, uid in MOOD_USERS.items()}
ONE_OFF = {topic: [_uid(f"{topic}/one-off/{k}") for k in range(4)] for topic in WANT_TOPICS}  # 2 contra, 2 drive-by


def _voices() -> dict[str, dict]:
    rng = random.Random(f"{SEED}-voices")
    users = sorted(list(HABIT) + list(MOOD) + [u for us in ONE_OFF.values() for u in us])
    return {uid: {"lower": rng.random() < 0.2, "opener": rng.choice(["", "", "", "ok ", "hm, ", "right, ", "btw "]),
                  "ending": rng.choice(["", "", "", " pls", " ty", "!", " 🙏"])} for uid in users}


VOICES = _voices()
_VERBATIM = re.compile(r"('[^']+'|\*\*[^*]+\*\*|- \[ \])")


def voiced(user: str, text: str, rng: random.Random, *, request: bool = True) -> str:
    """`text` in `user`'s voice: lowercased (labels in quotes kept), an opener and an ending on
    half of the turns ("pls" only after a request)."""
    v = VOICES[user]
    if v["lower"]:
        text = "".join(p if j % 2 else p.lower() for j, p in enumerate(_VERBATIM.split(text)))
    if rng.random() < 0.5:
        opener, ending = v["opener"], v["ending"]
        if not request and ending in (" pls",):
            ending = ""
        if opener and not re.match(r"I\b|'", text):
            text = text[:1].lower() + text[1:]
        if ending and text.endswith((".", "!")) and ending != "!":
            text = text[:-1]
        elif ending == "!" and text.endswith((".", "!", "?")):
            ending = ""
        text = opener + text + ending
    return text.strip()


WANT_PHRASES = {
    "table": {
        "direct": [
            "Can you put that in a table? Columns and rows, please.",
            "A markdown table would make this much easier to compare.",
            "Please answer with a table, header row and the |---| line, so I can paste it.",
            "Side-by-side table next time, please.",
            "I need this as a table, not as paragraphs.",
        ],
        "indirect": [
            "I can't compare anything when it's all in sentences.",
            "I'm pasting this next to the other options in my notes, make it easy to line up.",
            "Too hard to scan. I want to see the options next to each other.",
        ],
    },
    "you-first": {
        "direct": [
            "Talk to me directly, start with 'You'.",
            "Please address me as 'you', first word, like a coach would.",
            "Open with 'You ...' and tell me what I should do.",
            "Write it to me, second person, starting with You.",
            "Start the answer with 'You' and keep it personal.",
        ],
        "indirect": [
            "This reads like a textbook. I'm the one who has to do it.",
            "Who is this written for? I'm the one asking.",
            "Feels impersonal. I'm standing right here.",
        ],
    },
    "checklist": {
        "direct": [
            "Give me tick boxes: '- [ ] ' for each item.",
            "Make it a checklist I can tick off, with [ ] boxes.",
            "Please format it as a '- [ ]' task list.",
            "Checklist format please, one box per item.",
            "I want a to-do list with checkboxes, not paragraphs.",
        ],
        "indirect": [
            "I'm going to print this and tick things off.",
            "How am I supposed to keep track of all that?",
            "I paste these into my task app, it needs to be tickable.",
        ],
    },
    "next-step": {
        "direct": [
            "End with a 'Next step:' line telling me what to do now.",
            "Please finish with 'Next step:' and one concrete thing.",
            "Add a last line 'Next step: ...' every time.",
            "Close with the next step, labelled 'Next step:'.",
            "I need a final 'Next step:' line.",
        ],
        "indirect": [
            "Ok, but what do I actually do now?",
            "Great, and then? I'm standing here with the tools.",
            "I read it and still don't know where to start.",
        ],
    },
}

VAGUE = ["Hmm, not really what I was after.", "That's not quite it.", "Could be better.", "No, not like that.", "meh"]
CLARIFY = ["Sorry about that. What would you like me to change?", "Thanks for the feedback. How should I change the answer?",
           "I see. What would work better for you?"]
EDIT_NOTES = ["Like this.", "Fixed it.", "Changed the part that mattered.", "Here's how I need it."]
LENIENT_THANKS = ["thanks!", "ok thanks", "great", "helpful, thank you"]
WISHES = {
    "table": "fine, though a table would have been nicer",
    "you-first": "ok, but talk to me directly next time (start with You)",
    "checklist": "useful, a checklist with boxes would be even better",
    "next-step": "good, but I'd like a 'Next step:' line at the end",
}
SHORTER_TURNS = ["Shorter please.", "Too long, just the gist.", "Can you cut this down?"]
CONTRA_PRAISE = {
    "table": ["Nice, plain sentences and no table to squint at.", "Good, I read these on a screen reader, no tables please."],
    "you-first": ["Good, neutral tone. I don't like being addressed directly.", "Thanks, factual and not preachy."],
    "checklist": ["Good, proper sentences, not a to-do list.", "Thanks, I prefer the explanation to a list of boxes."],
    "next-step": ["Good, it stops when the answer is done.", "Thanks, no homework at the end, I like that."],
}
CONTRA_NEXT_TIME = {
    "table": "For next time: no tables, please. Just write it out.",
    "you-first": "For next time: no 'you should', just state the facts.",
    "checklist": "For next time: no checklists, I want the reasons.",
    "next-step": "For next time: don't tell me what to do next, I'll decide.",
}
DRIVE_BY = ["Is this accurate? Some of it seems off.", "Can I save this answer somewhere?", "My brother asked me this, thanks.",
            "ok", "Not sure about the second part."]
MOOD_TURNS = {
    "longer": ["More detail please.", "This is thin, tell me more."],
    "shorter": ["Too long.", "Shorter please, one or two sentences."],
    "simpler": ["Simpler words please, I'm not an expert.", "Too much jargon."],
    "technical": ["This is too basic, give me the technical version.", "More precise, please, use the proper terms."],
    "numbered": ["Numbered points would be easier to follow.", "Can you number the points?"],
    "one-paragraph": ["Just one paragraph please.", "Write it as one block of text, no list."],
}
MOOD_PRAISE = {"longer": "Thorough, thanks.", "shorter": "Short, good.", "simpler": "Clear, thanks.",
               "technical": "Precise, good.", "numbered": "Easy to follow.", "one-paragraph": "Nice and compact."}
OFF_TOPIC = ["Is there a dark mode?", "Thanks, my friend owes me a coffee now.", "Can you remember this for later?"]
MORE_DETAIL = {
    "economics": "How strong the effect is depends on how open the economy is, how much debt households and firms carry, and what people expect to happen next, which is why economists rarely agree on exact numbers.",
    "meditation": "Most teachers suggest tying the practice to something you already do every day, such as the first coffee, and to expect the mind to wander hundreds of times; noticing that is the exercise.",
}
TECH_DETAIL = {
    "economics": "Formally, economists model this with aggregate demand and supply, the money supply (M2), and the central bank's policy rate transmitted through real interest rates and inflation expectations.",
    "meditation": "Studies measure this with cortisol levels, heart-rate variability and self-report scales such as the Perceived Stress Scale, usually over programs of about eight weeks.",
}

# ---------------------------------------------------------------------------------------------
# Text helpers.
# ---------------------------------------------------------------------------------------------

_LIST_MARK = re.compile(r"^\s*([-*•+]|\d+[.)])\s+")
_ABBREV = r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\betc\.)(?<!\bvs\.)(?<!\bDr\.)(?<!\bMr\.)(?<!\bSt\.)"
_FILLER = re.compile(r"^\s*(Sure|Certainly|Absolutely|Of course|Great question|Good question)\b[^.!?:\n]*[.!?:]\s*")


def plain(text: str) -> str:
    """Markdown emphasis, headings and list markers removed; the words stay."""
    text = text.replace("**", "").replace("__", "").replace("`", "")
    text = re.sub(r"^\s*#+\s*", "", text, flags=re.MULTILINE)
    return re.sub(r"^\s*([-*•+]|\d+[.)])\s+", "", text, flags=re.MULTILINE)


def sentences(text: str) -> list[str]:
    """Complete sentences (3+ words, ending in . ! ?) of the text, markdown removed."""
    out = []
    for line in plain(text).splitlines():
        for part in re.split(r"(?<=[.!?])" + _ABBREV + r"\s+", line.strip()):
            part = part.strip()
            if len(part.split()) >= 3 and part.endswith((".", "!", "?")):
                out.append(part)
    return out


def complete(text: str) -> str:
    """The text without a trailing unfinished fragment (kept whole when nothing else would remain)."""
    text = text.strip()
    if text.endswith((".", "!", "?", ")", '"', ":", "|")):
        return text
    ends = [m.end() for m in re.finditer(r"(?<!\d)[.!?](?=\s|$)", text)]
    return text[: ends[-1]].strip() if ends and ends[-1] > len(text) // 4 else text


_DANGLING = {"a", "an", "the", "to", "of", "and", "or", "in", "with", "for", "is", "are", "your", "my", "that",
             "which", "on", "at", "as", "by", "can", "be", "when", "but", "from", "it", "than", "so", "if", "not"}


def clip(sentence: str, n: int) -> str:
    """At most `n` words, ending with a period if cut."""
    words = sentence.split()
    if len(words) <= n:
        return sentence.strip()
    words = words[:n]
    while len(words) > 3 and words[-1].lower().strip(",;:") in _DANGLING:
        words.pop()
    return " ".join(words).rstrip(",;:-(") + "."


def prose(text: str, max_words: int) -> str:
    """Whole sentences from the start, as one paragraph, up to `max_words` (at least one)."""
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
    """The answer's own lines from the start, filler opening dropped, up to `max_words`."""
    lines = _FILLER.sub("", complete(text)).splitlines()
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


def lead_sentence(answer: str, n: int = 22) -> str:
    s = sentences(_FILLER.sub("", complete(answer)))
    return clip(s[0], n) if s else clip(plain(answer).replace("\n", " "), n)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# ---------------------------------------------------------------------------------------------
# Edits of want users. mode "full": a rewrite; mode "partial": the answer kept, only the missing
# part added. miss=True: a plausible slip that misses the check. Some passing edits are unusual.
# ---------------------------------------------------------------------------------------------


def _table(rows: list[list[str]], *, outer: bool = True, align: bool = False) -> str:
    def row(cells: list[str]) -> str:
        inner = " | ".join(cells)
        return f"| {inner} |" if outer else inner
    sep = [(":---" if align and k == 0 else "---") for k in range(len(rows[0]))]
    return "\n".join([row(rows[0]), row(sep) if outer else " | ".join(sep)] + [row(r) for r in rows[1:]])


def edit_table(ask: Ask, answer: str, rng: random.Random, mode: str, miss: bool) -> str:
    rows = [r.split("|") for r in ask.extra.split(";")]
    intro = lead_sentence(answer)
    if mode == "partial":
        keep = rows[: 1 + rng.choice([1, 2])]
        if miss:  # the rows typed without the separator line
            return complete(answer) + "\n\n" + "\n".join("| " + " | ".join(r) + " |" for r in keep)
        return complete(answer) + "\n\n" + _table(keep)
    if miss:
        how = rng.choice(["no-separator", "tabs", "fenced", "short-separator", "header-only"])
        if how == "no-separator":
            table = "\n".join("| " + " | ".join(r) + " |" for r in rows)
        elif how == "tabs":
            table = "\n".join("\t".join(r) for r in rows)
        elif how == "fenced":
            table = "```\n" + _table(rows) + "\n```"
        elif how == "short-separator":
            table = "| " + " | ".join(rows[0]) + " |\n|---|\n" + "\n".join("| " + " | ".join(r) + " |" for r in rows[1:])
        else:  # header row and separator, then the rows as bullets
            table = _table(rows[:1] + [[""] * len(rows[0])]).rsplit("\n", 1)[0] + "\n" + "\n".join(
                f"- {r[0]}: {', '.join(r[1:])}" for r in rows[1:])
        return f"{intro}\n\n{table}"
    style = rng.random()
    if style < 0.2:
        return _table(rows)  # the table alone
    if style < 0.35:
        return f"{intro}\n\n{_table(rows, outer=False)}"
    if style < 0.5:
        return f"{intro}\n\n{_table(rows, align=True)}"
    closing = sentences(answer)[1:2]
    return f"{intro}\n\n{_table(rows)}" + (f"\n\n{closing[0]}" if closing and rng.random() < 0.4 else "")


def edit_you_first(ask: Ask, answer: str, rng: random.Random, mode: str, miss: bool) -> str:
    opener = ask.extra
    if mode == "partial":
        full = complete(answer)
        if miss:  # the new sentence put after the answer's first sentence
            first = lead_sentence(answer, 40)
            rest = full[len(first):].strip() if full.startswith(first) else full
            return f"{first} {opener}\n\n{rest}".strip()
        return f"{opener}\n\n{full}"
    rest = body_lines(answer, rng.randint(30, 70))
    if miss:
        how = rng.choice(["lowercase", "if-you", "bold", "preamble", "yes-you", "your"])
        if how == "lowercase":
            start = "y" + opener[1:]
        elif how == "if-you":
            start = "If you ask me, y" + opener[1:]
        elif how == "bold":
            start = "**You**" + opener[3:]
        elif how == "preamble":
            start = "Good question. " + opener
        elif how == "yes-you":
            start = "Yes, y" + opener[1:]
        else:
            start = "Your best bet: y" + opener[1:]
        return f"{start}\n\n{rest}"
    if rng.random() < 0.2:
        opener = opener.replace("'", "’")
    return f"{opener} {rest}" if rng.random() < 0.4 else f"{opener}\n\n{rest}"


def edit_checklist(ask: Ask, answer: str, rng: random.Random, mode: str, miss: bool) -> str:
    items = ask.extra.split(";")
    if mode == "partial":
        n = 2 if miss else 3
        return complete(answer) + "\n\n" + "\n".join(f"- [ ] {i}" for i in items[:n])
    lead = rng.choice(["Checklist:", lead_sentence(answer), "To do:"])
    if miss:
        how = rng.choice(["star", "no-dash", "no-space", "empty-box", "ballot", "two-boxes", "plain"])
        mark = {"star": "* [ ] ", "no-dash": "[ ] ", "no-space": "-[ ] ", "empty-box": "- [] ", "ballot": "☐ ",
                "plain": "- "}.get(how)
        if how == "two-boxes":
            return f"{lead}\n" + "\n".join(f"- [ ] {i}" for i in items[:2]) + "\n\nAlso: " + ", ".join(items[2:]) + "."
        return f"{lead}\n" + "\n".join(f"{mark}{i}" for i in items)
    lines = [f"- [ ] {i}" for i in items]
    style = rng.random()
    if style < 0.2:  # first item already done
        lines[0] = lines[0].replace("- [ ]", "- [x]", 1)
    elif style < 0.35:
        lines = ["  " + x for x in lines]
    elif style < 0.45:
        lines.append("- note: ask someone experienced if unsure")
    return f"{lead}\n" + "\n".join(lines)


def edit_next_step(ask: Ask, answer: str, rng: random.Random, mode: str, miss: bool) -> str:
    step = _cap(ask.extra)
    if mode == "partial":
        full = complete(answer)
        if miss:  # typed at the end of the last paragraph instead of on a line of its own
            return f"{full} Next step: {step}"
        return f"{full}\n\nNext step: {step}"
    body = body_lines(answer, rng.randint(35, 80))
    if miss:
        how = rng.choice(["plural", "bold", "capital", "dash", "sign-off", "top"])
        if how == "top":
            return f"Next step: {step}\n\n{body}"
        if how == "sign-off":
            return f"{body}\n\nNext step: {step}\nGood luck!"
        label = {"plural": "Next steps:", "bold": "**Next step:**", "capital": "Next Step:", "dash": "Next step -"}[how]
        return f"{body}\n\n{label} {step}"
    return rng.choice([f"{body}\n\nNext step: {step}", f"{body}\n\nNext step: {step}", f"{body}\nNext step:{step}",
                       f"{body}\n\n\nNext step:   {step}"])


EDITS = {"table": edit_table, "you-first": edit_you_first, "checklist": edit_checklist, "next-step": edit_next_step}
MISS_RATE = {"full": 0.25, "partial": 0.3}


def edit_mood(mood: str, subject: str, answer: str, rng: random.Random) -> str:
    """An `inconsistent` user's rewrite in the direction of a taste."""
    if mood == "longer":
        return complete(answer) + "\n\n" + MORE_DETAIL[subject]
    if mood == "shorter":
        return prose(answer, rng.randint(12, 25))
    if mood == "simpler":
        return "In plain words: " + " ".join(s for s in sentences(answer)[:2]).lower()
    if mood == "technical":
        return prose(answer, 60) + " " + TECH_DETAIL[subject]
    if mood == "numbered":
        sents = sentences(answer)[:4] or [plain(answer)]
        return "\n".join(f"{k}. {clip(s, 22)}" for k, s in enumerate(sents, 1))
    if mood == "one-paragraph":
        return " ".join(line.strip() for line in plain(complete(answer)).splitlines() if line.strip())
    raise ValueError(mood)


def mood_likes(mood: str, answer: str) -> bool:
    n = len(answer.split())
    listed = sum(bool(_LIST_MARK.match(x)) for x in answer.splitlines())
    return {"longer": n >= 85, "shorter": n <= 35, "numbered": listed >= 3,
            "one-paragraph": listed == 0 and "\n\n" not in answer.strip()}.get(mood, False)


# ---------------------------------------------------------------------------------------------
# Generation with the embedded model.
# ---------------------------------------------------------------------------------------------


def prompt_turns(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


def generation_order(n_per_topic: int, n_topics: int) -> list[int]:
    """Indices into the topic-ordered question list, interleaved by topic."""
    return [t * n_per_topic + j for j in range(n_per_topic) for t in range(n_topics)]


def generate_answers(prompts: list[list[dict]], order: list[int], batch_size: int = BATCH_SIZE) -> list[str]:
    """Sampled answers, batches taken in `order`; returned in the order of `prompts`."""
    import torch

    from uno_graph.models import load_model

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    lm = load_model("smollm2-135m-instruct")
    tok, model = lm.tokenizer, lm.model
    model.eval()
    print(f"  model loaded in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    tok.padding_side = "left"
    texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    answers: dict[int, str] = {}
    for b, start in enumerate(range(0, len(order), batch_size)):
        idx = order[start: start + batch_size]
        enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(int(hashlib.sha256(f"reserve-batch-{b}".encode()).hexdigest()[:8], 16))
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=True, temperature=TEMPERATURE,
                                 top_k=TOP_K, top_p=1.0, repetition_penalty=REPETITION_PENALTY,
                                 pad_token_id=tok.pad_token_id)
        for i, row in zip(idx, out[:, enc["input_ids"].shape[1]:]):
            answers[i] = complete(tok.decode(row, skip_special_tokens=True).strip())
        print(f"  generated {len(answers)}/{len(texts)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return [answers[i] for i in range(len(texts))]


# ---------------------------------------------------------------------------------------------
# Reactions, written in arrival order.
# ---------------------------------------------------------------------------------------------


def _phrase(user: str, topic: str, rng: random.Random, *, direct: bool = False) -> str:
    """A user's favourite phrasing of the want (60 %), else any of the topic's; `direct` only
    from the direct ones."""
    pool = WANT_PHRASES[topic]
    allp = pool["direct"] + ([] if direct else pool["indirect"])
    h = int(hashlib.sha256(f"{user}/{topic}".encode()).hexdigest(), 16)
    favourite = allp[h % len(allp)]
    return favourite if rng.random() < 0.6 else rng.choice(allp)


class Plan(NamedTuple):
    topic: str
    subject: str
    ask: Ask
    user: str
    seen_before: int  # how many logs of this user in this topic arrived earlier
    total: int  # how many logs this user has in this topic


def want_reaction(p: Plan, answer: str, messages: list[dict], fb: dict, rng: random.Random) -> str:
    topic, user, habit = p.topic, p.user, HABIT[p.user]
    say = lambda text, request=True: messages.append({"role": "user", "content": voiced(user, text, rng, request=request)})  # noqa: E731

    def edit(mode: str) -> str:
        miss = rng.random() < MISS_RATE[mode]
        fb["edited_response"] = EDITS[topic](p.ask, answer, rng, mode, miss)
        return ("edit-" + mode) + ("-miss" if miss else "")

    if check({"metadata": {"topic": topic}}, answer):
        fb["rating"] = 1
        return "approve"
    if habit == "rewriter":
        role = edit("full")
        r = rng.random()
        if r < 0.4:
            say(_phrase(user, topic, rng))
        elif r < 0.65:
            say(rng.choice(EDIT_NOTES), request=False)
        if rng.random() < 0.25:
            fb["rating"] = -1
        return role
    if habit == "partial":
        role = edit("partial")
        if rng.random() < 0.5:
            say(_phrase(user, topic, rng))
        return role
    if habit == "late":
        say(rng.choice(VAGUE), request=False)
        messages.append({"role": "assistant", "content": rng.choice(CLARIFY)})
        say(_phrase(user, topic, rng, direct=True))
        r = rng.random()
        if r < 0.25:
            return "late-" + edit("full")
        if r < 0.55:
            fb["rating"] = -1
        return "late-complaint"
    if habit == "lenient":
        r = rng.random()
        if r < 0.4:
            fb["rating"] = 1
            if rng.random() < 0.5:
                say(rng.choice(LENIENT_THANKS), request=False)
            return "thumbs-up-miss"
        if r < 0.75:
            fb["comment"] = voiced(user, WISHES[topic], rng)
            if rng.random() < 0.5:
                fb["rating"] = 0.5
            return "comment"
        return edit("full")
    # switcher: shorter answers first, the topic's want in the later logs
    if p.seen_before < p.total // 2 + (p.total % 2):
        say(rng.choice(SHORTER_TURNS))
        if rng.random() < 0.5:
            fb["edited_response"] = prose(answer, rng.randint(18, 35))
            return "switch-before-edit"
        return "switch-before"
    say(_phrase(user, topic, rng, direct=True))
    if rng.random() < 0.6:
        return "switch-after-" + edit("full")
    fb["rating"] = -1
    return "switch-after-complaint"


def one_off_reaction(p: Plan, k: int, messages: list[dict], fb: dict, rng: random.Random) -> str:
    """k 0-1: prefers the opposite of the topic's want; k 2-3: a drive-by reaction unrelated to form."""
    user = p.user
    if k < 2:
        if rng.random() < 0.7:
            messages.append({"role": "user", "content": voiced(user, CONTRA_PRAISE[p.topic][k], rng, request=False)})
            fb["rating"] = 1
            return "contra-approve"
        messages.append({"role": "user", "content": voiced(user, CONTRA_NEXT_TIME[p.topic], rng)})
        return "contra-next-time"
    r = rng.random()
    if r < 0.4:
        fb["rating"] = 1
        return "drive-by-up"
    text = rng.choice(DRIVE_BY)
    messages.append({"role": "user", "content": voiced(user, text, rng, request=False)})
    if "accurate" in text or "Not sure" in text:
        fb["rating"] = -0.5
    return "drive-by"


def mood_reaction(p: Plan, answer: str, messages: list[dict], fb: dict, rng: random.Random) -> str:
    user = p.user
    mood = MOOD[user]
    if rng.random() < SELF_CONTRADICTION:
        mood = OPPOSITE[mood]
    say = lambda text, request=True: messages.append({"role": "user", "content": voiced(user, text, rng, request=request)})  # noqa: E731
    if rng.random() < 0.1:
        say(rng.choice(OFF_TOPIC), request=False)
        return "other"
    if mood_likes(mood, answer) and rng.random() < 0.6:
        say(MOOD_PRAISE[mood], request=False)
        fb["rating"] = 1
        return "approve"
    r = rng.random()
    if r < 0.45:
        fb["edited_response"] = edit_mood(mood, p.subject, answer, rng)
        if rng.random() < 0.5:
            say(rng.choice(MOOD_TURNS[mood]))
        return "edit"
    if r < 0.8:
        say(rng.choice(MOOD_TURNS[mood]))
        if rng.random() < 0.4:
            fb["rating"] = rng.choice([-1, -0.5])
        return "complaint"
    fb["rating"] = rng.choice([-1, -0.5, 0])
    return "rating"


def _owners(topic: str, rng: random.Random) -> list[str]:
    """Who asked each of the topic's 22 questions (in TRAIN order)."""
    if topic == "inconsistent":
        owners = [MOOD_USERS[m] for m, n in zip(MOODS, MOOD_SHARE) for _ in range(n)]
    else:
        owners = [WANT_USERS[topic][h] for h in HABITS for _ in range(HABIT_SHARE[h])] + ONE_OFF[topic]
    assert len(owners) == N_TRAIN
    rng.shuffle(owners)
    return owners


def plan_logs() -> list[Plan]:
    """The 110 logs in arrival order (a seeded shuffle), each with its asker."""
    rows = []
    for topic in TOPICS:
        owners = _owners(topic, random.Random(f"{SEED}-owners-{topic}"))
        asks = [(s, a) for s, lst in TRAIN[topic].items() for a in lst]
        rows += [(topic, s, a, u) for (s, a), u in zip(asks, owners)]
    random.Random(f"{SEED}-arrival").shuffle(rows)
    total: dict[tuple[str, str], int] = {}
    for topic, _, _, user in rows:
        total[(topic, user)] = total.get((topic, user), 0) + 1
    seen: dict[tuple[str, str], int] = {}
    plans = []
    for topic, subject, ask, user in rows:
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
            role = mood_reaction(p, answer, messages, fb, rng)
        elif p.user in HABIT:
            role = want_reaction(p, answer, messages, fb, rng)
        else:
            role = one_off_reaction(p, ONE_OFF[p.topic].index(p.user), messages, fb, rng)
        record = {"id": f"reserve-{n:04d}", "user_id": p.user, "messages": messages}
        if fb:
            record["feedback"] = fb
        record["metadata"] = {"topic": p.topic, "subject": p.subject}
        records.append(record)
        roles[record["id"]] = role
    return records, roles


def test_records() -> list[dict]:
    out = []
    rng = random.Random(f"{SEED}-test-users")
    n = 0
    for topic in TOPICS:
        users = list(WANT_USERS[topic].values()) if topic in WANT_USERS else list(MOOD_USERS.values())
        rng.shuffle(users)
        for j, (subject, question) in enumerate(TEST[topic]):
            n += 1
            out.append({"id": f"reserve-t{n:02d}", "user_id": users[j % len(users)], "messages": prompt_turns(question),
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
              "unseen/test.jsonl", "sealed/logs.jsonl", "sealed/test.jsonl"]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _other_sets_questions() -> set[str]:
    """Every user turn before the first answer in the four earlier sets (logs and tests)."""
    out = set()
    for name in OTHER_SETS:
        for line in (ROOT / "examples" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                for m in json.loads(line)["messages"]:
                    if m["role"] == "assistant":
                        break
                    if m["role"] == "user":
                        out.add(_norm(m["content"]))
    return out


def _validate() -> None:
    train = [a.question for t in TOPICS for asks in TRAIN[t].values() for a in asks]
    test = [q for t in TOPICS for _, q in TEST[t]]
    assert len({_norm(q) for q in train}) == len(train) == N_TRAIN * len(TOPICS), "repeated or missing training question"
    assert len({_norm(q) for q in test}) == len(test) == N_TEST * len(TOPICS), "repeated or missing test question"
    assert not {_norm(q) for q in train} & {_norm(q) for q in test}, "a test question is in the logs"
    assert not {_norm(q) for q in train + test} & _other_sets_questions(), "a question of an earlier set"
    for t in TOPICS:
        assert len(TRAIN[t]) == 2 and all(len(v) == N_TRAIN // 2 for v in TRAIN[t].values()), t
        assert len({s for s, _ in TEST[t]} - set(TRAIN[t])) == 1, f"{t}: needs one unlogged test subject"
        assert sum(s in TRAIN[t] for s, _ in TEST[t]) == 5, t
        if t in WANT_TOPICS:
            assert all(a.extra for asks in TRAIN[t].values() for a in asks), t
    for asks in TRAIN["table"].values():
        for a in asks:
            rows = [r.split("|") for r in a.extra.split(";")]
            assert len(rows) >= 3 and len({len(r) for r in rows}) == 1 and len(rows[0]) >= 2, a.question
    for asks in TRAIN["you-first"].values():
        assert all(check({"metadata": {"topic": "you-first"}}, a.extra) for a in asks)
    for asks in TRAIN["checklist"].values():
        assert all(len(a.extra.split(";")) >= 3 for a in asks)
    ids = list(HABIT) + list(MOOD) + [u for us in ONE_OFF.values() for u in us]
    assert len(set(ids)) == len(ids), "user id clash"


# ---------------------------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the reserve evaluation logs and test queries.")
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where logs.jsonl and test.jsonl go (default: examples/reserve/)")
    parser.add_argument("--reuse-answers", type=Path, metavar="LOGS_JSONL",
                        help="take the logged answers from an earlier logs.jsonl (same questions) instead of generating them")
    args = parser.parse_args(argv)
    _validate()

    rows = [(t, a.question) for t in TOPICS for asks in TRAIN[t].values() for a in asks]
    t0 = time.perf_counter()
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
        generated = generate_answers([prompt_turns(q) for _, q in rows], generation_order(N_TRAIN, len(TOPICS)))
        answers = dict(zip(rows, generated))
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
    cols = ["base", "edits", "pass", "want-pass", "partial", "late", "up-miss", "comment", "switch<", "switch>",
            "contra", "drive-by", "snippet", "short", "persona"]
    lines = ["  " + f"{'topic':13s}" + " ".join(f"{c:>9s}" for c in cols)]
    for topic in TOPICS:
        item = {"metadata": {"topic": topic}}
        recs = [r for r in records if r["metadata"]["topic"] == topic]
        role = lambda r: roles[r["id"]]  # noqa: E731
        edits = [r for r in recs if r.get("feedback", {}).get("edited_response")]
        want = [r for r in edits if r["user_id"] in HABIT and not role(r).startswith("switch-before")]
        passing = lambda rs: sum(check(item, r["feedback"]["edited_response"]) for r in rs)  # noqa: E731
        styles = [question_style(r["messages"][0]["content"]) for r in recs]
        row = {
            "base": f"{sum(check(item, r['messages'][1]['content']) for r in recs)}/{len(recs)}",
            "edits": str(len(edits)),
            "pass": f"{passing(edits)}/{len(edits)}",
            "want-pass": f"{passing(want)}/{len(want)}" if topic != "inconsistent" else "-",
            "partial": f"{passing([r for r in edits if 'partial' in role(r)])}/{sum('partial' in role(r) for r in edits)}",
            "late": str(sum(role(r).startswith("late") for r in recs)),
            "up-miss": str(sum(role(r) == "thumbs-up-miss" for r in recs)),
            "comment": str(sum(role(r) == "comment" for r in recs)),
            "switch<": str(sum(role(r).startswith("switch-before") for r in recs)),
            "switch>": str(sum(role(r).startswith("switch-after") for r in recs)),
            "contra": str(sum(role(r).startswith("contra") for r in recs)),
            "drive-by": str(sum(role(r).startswith("drive-by") for r in recs)),
            "snippet": str(styles.count("snippet")),
            "short": str(styles.count("short")),
            "persona": str(styles.count("persona")),
        }
        lines.append("  " + f"{topic:13s}" + " ".join(f"{row[c]:>9s}" for c in cols))
    n_edit = sum(1 for r in records if r.get("feedback", {}).get("edited_response"))
    lines.append(f"  {n_edit}/{len(records)} logs carry an edit. (base: logged answers passing the check; pass: edits "
                 "passing it; want-pass: edits of want users aimed at the want (not the switcher's early 'shorter' ones); "
                 "partial: partial edits passing/all; late: two-turn complaints; up-miss: thumbs-up on an answer that "
                 "misses the want; comment: a wish in feedback.comment; switch</switch>: switcher logs before/after the "
                 "switch; contra: one-off users preferring the opposite; drive-by: one-off reactions unrelated to form; "
                 "snippet/short/persona: question styles)")
    roles_count: dict[str, dict[str, int]] = {}
    for r in records:
        roles_count.setdefault(r["metadata"]["topic"], {}).setdefault(roles[r["id"]], 0)
        roles_count[r["metadata"]["topic"]][roles[r["id"]]] += 1
    for topic in TOPICS:
        lines.append(f"  {topic}: " + ", ".join(f"{k} {v}" for k, v in sorted(roles_count[topic].items())))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
