""".venv/bin/python examples/sealed/make_sealed_logs.py [--reuse-answers examples/sealed/logs.jsonl]

Writes the fourth evaluation-only set: `examples/sealed/logs.jsonl` (110 user logs, 22 per topic)
and `examples/sealed/test.jsonl` (8 test queries per topic, none of them a logged question). It is
meant to be used ONCE, for a final evaluation: never tune anything on it. The topics and their
checks (`examples/sealed/checks.py`) were committed before this script generated anything.

How the procedure differs from the three earlier generators (`examples/make_example_logs.py`,
`examples/heldout/make_heldout_logs.py`, `examples/unseen/make_unseen_logs.py`):

- Wants and subjects are new: a `## ` heading as the first line (coffee, aquariums); a bold
  `**Key point:**` line (spreadsheets, driving); plain prose of at most 60 words with no list lines
  (skincare, moving house); an `Example:` line after the explanation (e-mail writing, statistics);
  inconsistent (literature, sports). The test set adds a third, unlogged subject per topic
  (pottery, sailing, birdwatching, negotiation, psychology).
- Questions are mid-length (one or two sentences), many in imperative form ("Explain ...",
  "Give me ...", "Walk me through ...", "Tell me ..."), and about a fifth come after a first user
  turn that gives context (two user turns in a row, then the answer).
- Decoding: on-policy answers of the embedded SmolLM2-135M-Instruct (`uno_graph.models.load_model`,
  the user turns through the chat template, left padding), sampled with temperature 0.5, top_p 0.95,
  top_k off, repetition_penalty 1.05, max_new_tokens 110, in batches of 8 over the questions sorted
  by prompt length (so a batch holds prompts of similar length, across topics),
  `torch.manual_seed(SEED + 31 * b)` before batch b, `torch.set_num_threads(1)`. Answers are logged
  as generated (stripped), also when cut mid-sentence by the token limit.
- Users have opaque ids. Per want topic five want users with one habit each: `editor` (rewrites;
  with the want in words, a short note, or nothing), `sloppy` (rewrites; each rewrite misses the
  want with probability 0.5, in a plausible way), `complainer` (a follow-up turn, sometimes two in a
  row, sometimes also a rating or a rewrite), `thumbs` (a rating and nothing else), `boxer` (types
  into the feedback box: a terse comment, a half-approval with a reservation, or a silent
  rewrite). A want user approves an answer that already meets the want. Eight "taste" users
  (longer, shorter, formal, casual, bullets, prose, examples, no examples) write the whole
  `inconsistent` topic and, in each want topic, the 2-3 logs that ask for the opposite of the want.
- Each want user states the want in a personal selection of the topic's phrasings (direct ones and
  indirect ones that never name the form) and in their own voice (lowercase, a prefix, a suffix).
- Logs are written in a seeded arrival order (topics mixed) with ids `sealed-0001` ...; every test
  item carries the `user_id` of one of its topic's want users.

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
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from checks import check  # noqa: E402  (examples/sealed/checks.py)

SEED = 7331
BATCH_SIZE = 8
MAX_NEW_TOKENS = 110
TEMPERATURE = 0.5
TOP_P = 0.95
REPETITION_PENALTY = 1.05
N_TRAIN = 22
N_TEST = 8
SLOPPY_MISS_RATE = 0.5

TOPICS = ["heading", "key-point", "compact-prose", "example-line", "inconsistent"]
WANT_TOPICS = TOPICS[:4]


class Ask(NamedTuple):
    """A question, an optional first user turn before it, and (for some topics) what a user who
    rewrites the answer adds: a title, a key point, or an example."""

    question: str
    extra: str | None = None
    context: str | None = None


# ---------------------------------------------------------------------------------------------
# Questions: per topic two subjects of 11 logged questions each.
# ---------------------------------------------------------------------------------------------

TRAIN: dict[str, dict[str, list[Ask]]] = {
    "heading": {
        "coffee": [
            Ask("Explain how a French press works and how long I should let the coffee steep before pressing.", "French press steeping time"),
            Ask("How fine should I grind for a pour-over, and how do I tell if it's too fine?", "Grind size for pour-over",
                "I finally bought a burr grinder after years of pre-ground coffee."),
            Ask("Why does my espresso taste sour even though I'm using fresh beans from a local roaster?", "Fixing sour espresso"),
            Ask("Give me a simple way to make cold brew at home without any special equipment.", "Cold brew without equipment"),
            Ask("What is the difference between light, medium and dark roast, apart from the color?", "Light, medium and dark roasts"),
            Ask("What am I doing wrong when I brew it on the stove?", "Less bitter moka pot coffee",
                "My moka pot coffee always tastes burnt and bitter."),
            Ask("Walk me through descaling a drip coffee machine with vinegar or citric acid.", "Descaling a drip machine"),
            Ask("How should I store coffee beans so they stay fresh for a couple of weeks?", "Keeping beans fresh"),
            Ask("Explain what the bloom is in pour-over coffee and why people wait 30 seconds.", "The pour-over bloom"),
            Ask("What ratio of coffee to water should I use for a standard drip brewer making eight cups?", "Drip coffee ratio for eight cups"),
            Ask("How is decaf made, and does it still have any caffeine in it?", "How decaf is made",
                "I'm trying to cut back on caffeine but I love the taste of coffee."),
        ],
        "aquariums": [
            Ask("Explain the nitrogen cycle in a new aquarium and how long it takes before I can add fish.", "The nitrogen cycle in a new tank"),
            Ask("How many small fish like neon tetras can we keep in it?", "Stocking a 60 litre tank",
                "We just set up a 60 litre tank for my son's birthday."),
            Ask("Why does my aquarium water keep turning green even though I change it every week?", "Stopping green aquarium water"),
            Ask("Give me a routine for weekly aquarium maintenance that doesn't take all afternoon.", "A weekly maintenance routine"),
            Ask("How often should I feed a betta fish, and how much food is too much?", "Feeding a betta"),
            Ask("What live plants are easy for a beginner aquarium with a basic LED light?", "Easy beginner plants"),
            Ask("What is it and how do I treat it?", "White spot on guppies",
                "One of my guppies has white spots on its fins and keeps rubbing against rocks."),
            Ask("Tell me how to acclimate new fish from the pet store bag so they don't get stressed.", "Acclimating new fish"),
            Ask("Do I really need a heater for goldfish, or are they fine at room temperature?", "Do goldfish need a heater?"),
            Ask("Explain what water hardness and pH mean for a freshwater aquarium.", "Water hardness and pH"),
            Ask("How do I clean the gravel without sucking up all the good bacteria?", "Cleaning gravel safely"),
        ],
    },
    "key-point": {
        "spreadsheets": [
            Ask("Explain the difference between relative and absolute cell references in Excel.",
                "A $ sign locks the row or column so it does not shift when you copy the formula."),
            Ask("How do I find and remove the duplicates?",
                "Make a backup copy, then select the column and use Data > Data cleanup > Remove duplicates.",
                "I have a list of 3,000 customer emails in Google Sheets and some appear twice."),
            Ask("Give me a quick way to sum a column only for rows where another column says 'paid'.",
                "=SUMIF(B:B, \"paid\", C:C) adds column C only where column B says paid."),
            Ask("What does VLOOKUP do, and why do people say XLOOKUP is better?",
                "XLOOKUP can look to the left and does not break when columns are inserted, unlike VLOOKUP."),
            Ask("How do I freeze the top row so the headers stay visible when I scroll down?",
                "Use View > Freeze > 1 row and the header stays on screen."),
            Ask("How do I turn them back into normal dates?",
                "Those numbers are dates stored as serial numbers: change the cell format to Date.",
                "My boss sent me a sheet where the dates show up as numbers like 45123."),
            Ask("Walk me through making a pivot table that shows total sales per month.",
                "Put the date in Rows, grouped by month, and the sales in Values, summarised by SUM."),
            Ask("Why does my formula show #REF! after I deleted a column?",
                "#REF! means the formula points to a cell that no longer exists: undo the delete or rewrite the reference."),
            Ask("Explain how conditional formatting works so overdue tasks turn red automatically.",
                "Use a custom formula rule such as =AND(C2<TODAY(), D2<>\"done\") with a red fill."),
            Ask("How can I split a column of full names into first and last names?",
                "Split text to columns with a space as the separator does it in one step."),
            Ask("What is the safest way to share a spreadsheet so others can view it but not edit my formulas?",
                "Share it as view-only, or protect the formula ranges so only you can edit them."),
        ],
        "driving": [
            Ask("Explain how to do a hill start in a manual car without rolling back.",
                "Find the biting point and hold it before you release the handbrake."),
            Ask("How do I merge safely from the on-ramp?",
                "Match the speed of the traffic while still on the ramp and merge into a gap; do not stop at the end unless you must.",
                "I passed my driving test last month and tomorrow is my first motorway drive."),
            Ask("Give me some tips for parallel parking when the space is only a little longer than my car.",
                "Line up with the car in front, reverse until your rear wheel is level with its bumper, then turn in steeply."),
            Ask("What should I do if my car starts to skid on an icy road?",
                "Steer gently where you want to go and stay off the brake and the throttle until the tyres grip again."),
            Ask("How far behind the car in front should I stay at highway speed?",
                "Keep at least a two-second gap, and double it in the rain."),
            Ask("Walk me through what to do right after a minor accident where nobody is hurt.",
                "Make the scene safe first, then swap names, insurance details and photos before moving the cars."),
            Ask("How do I stay calm and give useful feedback from the passenger seat?",
                "Agree on the route and the cues before you set off, and keep the debrief for when the car is parked.",
                "My teenage daughter is learning to drive and I'm the one teaching her."),
            Ask("Why do my tyres wear out faster on the inside edge?",
                "Wear on the inner edge usually means the wheel alignment is off."),
            Ask("Explain the rule for who goes first at a four-way stop when two cars arrive at the same time.",
                "When two cars arrive together, the car on the right goes first."),
            Ask("How can I stay alert on a long night drive of about five hours?",
                "Stop for a break every two hours; coffee only buys you a short time."),
            Ask("What is the right way to use the mirrors and the blind-spot check before changing lanes?",
                "Mirror, signal, then look over your shoulder for the blind spot before you move over."),
        ],
    },
    "compact-prose": {
        "skincare": [
            Ask("Explain in what order I should apply cleanser, serum, moisturizer and sunscreen in the morning."),
            Ask("Is that normal at my age, and what can I do about it?",
                context="I'm 34 and just started getting small breakouts on my chin again."),
            Ask("Do I really need sunscreen on cloudy days or in winter, or is that marketing?"),
            Ask("Give me a simple skincare routine for someone with dry skin who hates having ten products."),
            Ask("What is retinol, and how should a beginner start using it without irritation?"),
            Ask("Why does my skin feel tight after washing my face with regular soap?"),
            Ask("Tell me whether expensive moisturizers are worth it or if drugstore ones work just as well."),
            Ask("Can an eye cream actually help with that?",
                context="I spend most of the day in front of a screen and the skin under my eyes looks dark."),
            Ask("How often should I exfoliate, and is a scrub or an acid better?"),
            Ask("What does non-comedogenic mean on a product label?"),
            Ask("Explain how to do a patch test before trying a new face product."),
        ],
        "moving-house": [
            Ask("Give me a plan for packing up a two-bedroom apartment over four weekends."),
            Ask("How do we keep them calm on moving day and in the car?",
                context="We're moving 300 km away next month with two cats."),
            Ask("How do I choose a moving company and avoid getting scammed?"),
            Ask("What should go in an 'open first' box for the first night in a new place?"),
            Ask("Explain how to pack plates and glasses so they don't break in the truck."),
            Ask("Who do I need to tell about my new address when I move?"),
            Ask("How do I make sure I get my full deposit back?",
                context="I'm moving out of my rented flat at the end of the month."),
            Ask("Is it cheaper to rent a van and move myself, or to hire movers for a small flat?"),
            Ask("Tell me how to get rid of furniture I don't want to take along without paying for a skip."),
            Ask("How can I help my kids settle into a new neighbourhood and school after the move?"),
            Ask("What's the best way to label boxes so unpacking doesn't turn into chaos?"),
        ],
    },
    "example-line": {
        "email-writing": [
            Ask("Explain how to write a polite follow-up email when a client hasn't replied in two weeks.",
                "Hi Sam, just checking in on the proposal I sent on the 3rd. Happy to answer questions or set up a quick call."),
            Ask("How formal should my greeting and sign-off be?",
                "Hi Priya, I'm Alex from the finance team and I look forward to working with you. Best regards, Alex",
                "I'm starting a new office job on Monday and I'll be emailing people I've never met."),
            Ask("Give me advice on writing an email subject line that people actually open.",
                "Subject: Budget sign-off needed by Thursday"),
            Ask("How do I ask my manager for a deadline extension by email without sounding incompetent?",
                "Hi Dana, the client data arrived late, so I need until Wednesday to finish the report properly. Would that work?"),
            Ask("What is the right way to decline a meeting invitation politely?",
                "Thanks for the invite. I can't make Tuesday, but I'll read the notes and follow up."),
            Ask("How should I word the correction email?",
                "Subject: Please disregard my last email. The report I sent at 10:00 was meant for my team only; please delete it.",
                "I accidentally sent a report to the whole department instead of just my team."),
            Ask("Tell me how to write an out-of-office reply for a two-week holiday.",
                "I'm away until 14 June with no access to email. For urgent matters please contact Lee at lee@example.com."),
            Ask("How do I introduce two colleagues to each other over email?",
                "Hi Ana, meet Ben, who runs our data team. Ben, Ana is planning the new survey and I think you two should talk."),
            Ask("Explain when I should use CC and when BCC.",
                "CC your manager on a project update; BCC forty parents so they don't see each other's addresses."),
            Ask("How can I make a long email easier to read for busy people?",
                "Subject: Decision needed: venue for May. First line: the ask. Then three short paragraphs of details."),
            Ask("What should I write when I'm asking a stranger for an informational interview?",
                "Hi Dr. Lee, I'm a nursing student interested in public health. Would you have 15 minutes for a call next week?"),
        ],
        "statistics": [
            Ask("Explain the difference between the mean and the median, and when the median is the better choice.",
                "For salaries of 1, 2, 2, 3 and 100 thousand the mean is 21.6k but the median is 2k, much closer to a typical person."),
            Ask("What does that actually mean in plain words?",
                "A drug lowers blood pressure by 2 points with p = 0.01: probably a real effect, but a small one.",
                "I'm reading a news article that says a study was 'statistically significant'."),
            Ask("What is a standard deviation telling me about a set of numbers?",
                "Two classes both average 70, one with scores from 65 to 75 and one from 40 to 100; the second has the larger standard deviation."),
            Ask("Give me an intuitive explanation of correlation versus causation.",
                "Ice cream sales and drownings rise together in summer, but the heat causes both."),
            Ask("Why do polls survey only about a thousand people and still claim to represent a whole country?",
                "One spoonful of well-stirred soup tastes the same whether the pot holds 2 litres or 200."),
            Ask("Explain what a confidence interval is without using heavy math.",
                "A poll says 52 % with a 95 % interval of 49-55 %, so the true share is plausibly anywhere in that range."),
            Ask("How do I know how many visitors we need before trusting the result?",
                "To detect a rise from 10 % to 12 % sign-ups you need roughly 4,000 visitors per version.",
                "My manager wants an A/B test for our website's sign-up button."),
            Ask("What is sampling bias, and how does it sneak into surveys?",
                "A phone survey during working hours misses most people with day jobs."),
            Ask("How do I read a box plot? I see them in reports all the time.",
                "The box spans the middle half of the data, the line inside is the median, and dots beyond the whiskers are outliers."),
            Ask("Tell me what a p-value is and what it is not.",
                "p = 0.03 means that if there were no effect, results this extreme would turn up only 3 % of the time."),
            Ask("What is regression to the mean and why does it fool people?",
                "A player with a record season usually does worse the next year, without any curse."),
        ],
    },
    "inconsistent": {
        "literature": [
            Ask("Explain what an unreliable narrator is and why authors use one."),
            Ask("Why is Mr. Darcy considered such an iconic character?", context="Our book club just finished Pride and Prejudice."),
            Ask("What is the difference between a novella and a novel?"),
            Ask("Give me a sense of what makes a poem a sonnet."),
            Ask("Why is Moby-Dick considered a great book even though so many people find it boring?"),
            Ask("Tell me what magical realism is and which writers are known for it."),
            Ask("What is the point of the stream-of-consciousness style in books like Ulysses?"),
            Ask("What does the green light stand for?",
                context="My daughter has to write an essay about symbolism in The Great Gatsby."),
            Ask("Explain why Shakespeare's plays are still performed after four hundred years."),
            Ask("What is dystopian fiction and why has it become so popular?"),
            Ask("How is a haiku structured, and does the syllable rule work in English?"),
        ],
        "sports": [
            Ask("Explain the offside rule in football in a way that finally makes sense."),
            Ask("How does scoring work in tennis, and why does it jump from 15 to 30 to 40?"),
            Ask("What's the difference between a test match and a T20?",
                context="I'm watching my first cricket match with friends from England."),
            Ask("What is a triple-double in basketball?"),
            Ask("Give me the basics of how a Formula 1 race weekend works."),
            Ask("Why do marathon runners hit the wall around kilometre 30?"),
            Ask("Tell me how the deciding set works in volleyball."),
            Ask("What does a designated hitter do in baseball?"),
            Ask("How is rugby union different from American football?", context="My son just joined a rugby team."),
            Ask("Explain how the Tour de France decides who wears the yellow jersey."),
            Ask("Why do golfers shout 'fore'?"),
        ],
    },
}

# Test queries: (subject, question, first user turn or None). Five on the logged subjects, three
# on a subject no log mentions.
TEST: dict[str, list[tuple[str, str, str | None]]] = {
    "heading": [
        ("coffee", "Explain how an AeroPress differs from a French press in taste and cleanup.", None),
        ("coffee", "How do I make enough good coffee without a big machine?", "I'm hosting brunch for ten people on Sunday."),
        ("aquariums", "What should I do if the water in my new tank turns cloudy after two days?", None),
        ("aquariums", "Give me a few peaceful fish that can live together in a community tank.", None),
        ("aquariums", "How long can my fish go without food if I travel for a week?", None),
        ("pottery", "Explain the difference between wheel throwing and hand building for a first pottery class.", None),
        ("pottery", "Will they be safe for food and water?", "I bought some air-dry clay to make small bowls."),
        ("pottery", "Why do my pots crack while they dry, before I even fire them?", None),
    ],
    "key-point": [
        ("spreadsheets", "How do I make a drop-down list in a Google Sheets cell?", None),
        ("spreadsheets", "Explain what the IF function does and how to mark scores above 50 as a pass.", None),
        ("driving", "What should I check on my car before a long summer road trip?", None),
        ("driving", "How do I handle roundabouts there?", "I'm driving in the UK next week and I'm used to driving on the right."),
        ("driving", "Give me tips for driving in heavy fog.", None),
        ("sailing", "Explain what tacking means when sailing against the wind.", None),
        ("sailing", "What should a beginner know before renting a small sailboat on a lake?", None),
        ("sailing", "How do I avoid getting seasick?", "My friend invited me on his sailboat for a weekend."),
    ],
    "compact-prose": [
        ("skincare", "Is it bad to sleep with makeup on once in a while?", None),
        ("skincare", "Explain what hyaluronic acid does in a serum.", None),
        ("moving-house", "How early should I start packing before a move?", None),
        ("moving-house", "What should we check or clean before the furniture goes in?", "We're moving into an older house next week."),
        ("moving-house", "Give me tips for the first night in a new home with a toddler.", None),
        ("birdwatching", "What binoculars should a beginner birdwatcher buy?", None),
        ("birdwatching", "Explain how to identify birds by their song.", None),
        ("birdwatching", "How long does it take for birds to find it?", "We put up a bird feeder last month but nothing has come yet."),
    ],
    "example-line": [
        ("email-writing", "How do I write a short thank-you email after a job interview?", None),
        ("email-writing", "How can I ask them to stop without being rude?", "A colleague keeps replying to all on every message."),
        ("statistics", "Explain the difference between a percentage and a percentage point.", None),
        ("statistics", "What is the law of large numbers?", None),
        ("statistics", "Give me a simple explanation of what a normal distribution is.", None),
        ("negotiation", "How do I negotiate a higher salary offer without risking the job?", None),
        ("negotiation", "Explain what anchoring means in a negotiation.", None),
        ("negotiation", "How do I push the price down?", "I'm buying a used car from a dealer this weekend."),
    ],
    "inconsistent": [
        ("literature", "What is a bildungsroman?", None),
        ("literature", "Should I start with Tolstoy or Dostoevsky?", "I want to read more classic Russian novels."),
        ("sports", "Explain how the points system works in a decathlon.", None),
        ("sports", "Why is the marathon 42.195 km long?", None),
        ("sports", "What is a hat-trick in football and in cricket?", None),
        ("psychology", "What is cognitive dissonance?", None),
        ("psychology", "Explain the difference between introverts and extroverts.", None),
        ("psychology", "Why do people procrastinate even when they know it hurts them?", "I always put off my work until the last minute."),
    ],
}

# ---------------------------------------------------------------------------------------------
# Users: opaque ids. Five want users per want topic (one habit each) and eight taste users.
# ---------------------------------------------------------------------------------------------

HABITS = ["editor", "sloppy", "complainer", "thumbs", "boxer"]
TASTES = ["longer", "shorter", "formal", "casual", "bullets", "prose", "examples", "no-examples"]


def _uid(name: str) -> str:
    return "usr-" + hashlib.sha256(f"{SEED}:{name}".encode()).hexdigest()[:6]


WANT_USERS = {topic: {habit: _uid(f"{topic}/{habit}") for habit in HABITS} for topic in WANT_TOPICS}
HABIT = {uid: habit for users in WANT_USERS.values() for habit, uid in users.items()}
TASTE_USERS = {taste: _uid(f"taste/{taste}") for taste in TASTES}
TASTE = {uid: taste for taste, uid in TASTE_USERS.items()}
# How many logs of a want topic each habit gets (before the contradicting users take theirs).
HABIT_SHARE = {"editor": 5, "sloppy": 5, "complainer": 4, "thumbs": 3, "boxer": 3}
CONTRADICTORS = {  # taste users who ask for the opposite of a want topic's want (one log each)
    "heading": ["casual", "prose"],
    "key-point": ["formal", "shorter", "no-examples"],
    "compact-prose": ["longer", "bullets", "examples"],
    "example-line": ["no-examples", "shorter"],
}

_PREFIXES = ["", "", "", "", "Hmm, ", "Ok so ", "Honestly, ", "Quick note: ", "Thanks, but ", "Sorry, "]
_SUFFIXES = ["", "", "", "", " thx", " Thanks.", " :)", " !!", " (for next time)", " cheers"]


def _voices() -> dict[str, dict]:
    rng = random.Random(f"{SEED}-voices")
    return {uid: {"lower": rng.random() < 0.25, "prefix": rng.choice(_PREFIXES), "suffix": rng.choice(_SUFFIXES)}
            for uid in sorted(list(HABIT) + list(TASTE))}


VOICES = _voices()
_VERBATIM = re.compile(r"('[^']+'|\*\*[^*]+\*\*)")


def voiced(user: str, text: str, rng: random.Random, *, request: bool = True) -> str:
    """`text` in `user`'s voice. Labels in quotes or bold are kept verbatim; the prefix and suffix
    come on 60 % of turns; "(for next time)" and "!!" only after a request, "Thanks, but" never next
    to another thank-you."""
    v = VOICES[user]
    if v["lower"]:
        text = "".join(p if j % 2 else p.lower() for j, p in enumerate(_VERBATIM.split(text)))
        text = text.rstrip(".")
    if rng.random() < 0.6:
        prefix, suffix = v["prefix"], v["suffix"]
        if ("next time" in suffix and (not request or "next time" in text.lower())) or ("!!" in suffix and not request):
            suffix = ""
        if prefix.startswith("Thanks") and (not request or "thank" in text.lower() or "thank" in suffix.lower()):
            prefix = ""
        if v["lower"]:
            prefix, suffix = prefix.lower(), suffix.lower()
        if prefix and not re.match(r"I\b|'|\*\*|##", text):
            text = text[:1].lower() + text[1:]
        text = prefix + text + suffix
    return text.strip()


WANT_PHRASES = {
    "heading": {
        "direct": [
            "Please put a '## ' title at the top, I paste these straight into my markdown notes.",
            "Start with a heading line like '## Topic' next time.",
            "Can you open with a markdown heading, two hashes, so my notes app picks it up?",
            "I need a '##' header as the very first line, then the answer.",
            "Give it a title first, '## something', and then the text.",
        ],
        "indirect": [
            "I can't find anything in my notes when the answers have no title.",
            "This goes into my wiki and it looks like a wall of text without a header.",
            "Hard to skim later, nothing at the top tells me what it's about.",
        ],
    },
    "key-point": {
        "direct": [
            "Add a '**Key point:**' line so I know what actually matters.",
            "Please bold the one main takeaway with '**Key point:**' in front of it.",
            "Can you put the key point on its own line, with the bold label?",
            "I'd like a line starting with **Key point:** every time.",
            "Mark the single most important thing with a bold 'Key point:' line.",
        ],
        "indirect": [
            "Which part of this do I actually need to remember?",
            "Too much to take in. What's the one thing that matters?",
            "I skim these on my break, the important bit needs to jump out.",
        ],
    },
    "compact-prose": {
        "direct": [
            "Shorter please, under 60 words, and no bullet points.",
            "Just a short paragraph, no lists. A few sentences is plenty.",
            "Can you answer in a couple of plain sentences instead of a list?",
            "Keep it under sixty words and write it as normal text.",
            "No bullets or numbered lists, just a brief answer in prose.",
        ],
        "indirect": [
            "I'm reading this on my phone between meetings, that's way too much.",
            "Why is everything a list? Just talk to me normally, and briefly.",
            "I lost interest halfway through.",
        ],
    },
    "example-line": {
        "direct": [
            "Please add a concrete example on its own line starting with 'Example:'.",
            "Give me an 'Example:' line after the explanation, I learn from examples.",
            "Can you add a line that starts with 'Example:' showing what you mean?",
            "I always want one real example, on a separate line labelled 'Example:'.",
            "Explanation first, then 'Example:' and an actual example.",
        ],
        "indirect": [
            "This is all abstract. Show me what it looks like in practice.",
            "I still can't picture it. What would that look like for real?",
            "Nice theory, but I need to see one concrete case.",
        ],
    },
}

COMMENTS = {  # terse feedback-box comments
    "heading": ["no heading", "needs a ## title", "title at the top pls", "add a header"],
    "key-point": ["no key point line", "what's the key point?", "bold key point missing", "mark the takeaway"],
    "compact-prose": ["too long", "no lists pls", "shorter, plain text", "under 60 words"],
    "example-line": ["no example", "add an Example: line", "example pls", "too abstract"],
}

RESERVATIONS = {  # a half-approval typed into the feedback box
    "heading": "Content is fine, but it still needs a ## title on top.",
    "key-point": "Good info, but I want the **Key point:** line.",
    "compact-prose": "Useful, but too long for me.",
    "example-line": "Clear enough, but where is the Example: line?",
}

APPROVALS = {
    "heading": ["Nice, the heading makes it easy to file.", "Perfect, title on top.", "Great, thanks!"],
    "key-point": ["Great, the key point is exactly what I needed.", "Perfect, thanks!", "That bold takeaway helps a lot."],
    "compact-prose": ["Short and to the point, thanks.", "Perfect length.", "Great, thanks!"],
    "example-line": ["The example made it click, thanks.", "Perfect, thanks!", "Great, exactly with an example."],
}

# `compact-prose` remarks that only make sense when the answer has list lines ("list") or more than
# 60 words ("long"); the others fit any answer that misses the want.
REMARK_NEEDS = {
    "Can you answer in a couple of plain sentences instead of a list?": "list",
    "Why is everything a list? Just talk to me normally, and briefly.": "list",
    "I'm reading this on my phone between meetings, that's way too much.": "long",
    "I lost interest halfway through.": "long",
    "too long": "long",
    "no lists pls": "list",
    "Useful, but too long for me.": "long",
}


def fits(text: str, answer: str) -> bool:
    """Whether a remark fits the answer it reacts to."""
    need = REMARK_NEEDS.get(text)
    if need == "list":
        return re.search(r"^\s*([-*•+]|\d+[.)])\s", answer, re.MULTILINE) is not None
    if need == "long":
        return len(answer.split()) > 60
    return True


EDIT_NOTES = ["Fixed it the way I like it.", "This is the format I want.", "Edited.", "See my version."]
OPENING_TURNS = ["hmm", "not quite.", "wait", "ok but", "no"]  # a first follow-up before the real complaint

CONTRA_TURNS = {
    ("heading", "casual"): "No titles or headings please, it's a chat, not a report.",
    ("heading", "prose"): "Please skip headings and markdown, just answer in normal sentences.",
    ("key-point", "formal"): "Please leave out bold labels like 'Key point'; it reads like a slide deck.",
    ("key-point", "shorter"): "No need to spell out a key point or a takeaway, just answer.",
    ("key-point", "no-examples"): "Just the answer please, no callouts or bold bits.",
    ("compact-prose", "longer"): "This is too thin. I want every detail, as long as it takes.",
    ("compact-prose", "bullets"): "Put it in a proper bulleted list, one point per line.",
    ("compact-prose", "examples"): "Way too short to be useful, walk me through it with examples.",
    ("example-line", "no-examples"): "Skip the examples, just the explanation please.",
    ("example-line", "shorter"): "Don't pad it with examples, the short rule is enough.",
}
CONTRA_PRAISE = {
    ("heading", "casual"): "Nice, just talking to me, no headings.",
    ("heading", "prose"): "Good, normal sentences and no headers.",
    ("key-point", "formal"): "Well written, and no bold labels. Please keep it that way.",
    ("key-point", "shorter"): "Good, no takeaway line tacked on.",
    ("key-point", "no-examples"): "Good, no callouts.",
    ("compact-prose", "longer"): "Great, thorough answer with all the details.",
    ("compact-prose", "bullets"): "Love the list, easy to follow.",
    ("compact-prose", "examples"): "Good, the examples help.",
    ("example-line", "no-examples"): "Good, no examples, just what I asked.",
    ("example-line", "shorter"): "Good, no padding with examples.",
}

TASTE_COMPLAINTS = {
    "longer": ["This is too shallow, I want the full story.", "More depth please."],
    "shorter": ["Too long, I lost interest halfway.", "Shorter please."],
    "formal": ["Could you phrase this more formally? It's for a report.", "A bit too chatty for my taste."],
    "casual": ["so stiff lol, talk like a normal person", "Way too textbook-y."],
    "bullets": ["A list would be much easier to read.", "Bullet points please."],
    "prose": ["Why the list? Just write it out.", "Please answer in sentences, not fragments."],
    "examples": ["Give me some examples, it's too abstract.", "An example would help."],
    "no-examples": ["Skip the examples, I just want the idea.", "Too many examples, get to the point."],
}
TASTE_PRAISE = {
    "longer": "Great, thorough answer, thanks!", "shorter": "Nice and short.", "bullets": "Love the list.",
    "prose": "Good, written out properly.", "examples": "The examples help, thanks.", "no-examples": "Good, straight to the point.",
    "formal": "Well put.", "casual": "ha nice",
}
OFF_TOPIC = ["Can I change the font size somewhere?", "ok", "My kid says hi.", "Not what I asked but fine.",
             "Is this app free?", "Thanks, that settles an argument."]

# Subject-specific text a taste user adds: more detail, or an example.
MORE_DETAIL = {
    "literature": "It also helps to read a short passage aloud and to look at when and for whom the book was written, because the same device can work very differently in another period.",
    "sports": "The official rulebook has the exact wording, and watching one full match with the rules in mind makes the details much easier to follow than reading about them.",
    "skincare": "Skin changes with the season, stress and hormones, so give any new routine four to six weeks, change one product at a time, and see a dermatologist if something gets worse.",
    "moving-house": "Make a simple checklist a month ahead, book the van or movers early, and keep documents, chargers and medicines with you rather than in the truck.",
}
EXAMPLE_EXTRA = {
    "literature": "For instance, in The Great Gatsby the narrator Nick tells us he is honest, yet he hides his own part in the story.",
    "sports": "For instance, in tennis a player who wins the first point of a game leads 15-love.",
    "skincare": "For instance, a gentle cleanser, a plain moisturizer and SPF 30 in the morning is already a full routine.",
    "moving-house": "For instance, a box labelled 'KITCHEN - open first - kettle, mugs, tea' saves you the first evening.",
}

# ---------------------------------------------------------------------------------------------
# Text helpers.
# ---------------------------------------------------------------------------------------------

_LIST_MARK = re.compile(r"^\s*([-*•+]|\d+[.)])\s+")
_ABBREV = r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\betc\.)(?<!\bvs\.)(?<!\bDr\.)(?<!\bMr\.)(?<!\bSt\.)"


def plain(text: str) -> str:
    """Markdown emphasis, headings and list markers removed; the words stay."""
    text = text.replace("**", "").replace("__", "").replace("`", "")
    text = re.sub(r"^\s*#+\s*", "", text, flags=re.MULTILINE)
    return re.sub(r"^\s*([-*•+]|\d+[.)])\s+", "", text, flags=re.MULTILINE)


def sentences(text: str) -> list[str]:
    """Complete sentences (3+ words, ending in . ! ?) of the text, markdown removed; a fragment
    cut by the token limit is dropped."""
    out = []
    for line in plain(text).splitlines():
        for part in re.split(r"(?<=[.!?])" + _ABBREV + r"\s+", line.strip()):
            part = part.strip()
            if len(part.split()) >= 3 and part.endswith((".", "!", "?")):
                out.append(part)
    return out


def complete(text: str) -> str:
    """The text without a trailing unfinished fragment (kept whole when nothing ends a sentence)."""
    text = text.strip()
    if text.endswith((".", "!", "?", ")", '"', ":")):
        return text
    ends = [m.end() for m in re.finditer(r"(?<!\d)[.!?](?=\s|$)", text)]
    return text[: ends[-1]].strip() if ends and ends[-1] > len(text) // 3 else text


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
    sents = [s for s in sentences(text) if not re.match(r"^(Sure|Certainly|Of course|Great question)\b", s)]
    if not sents:
        return clip(plain(text).replace("\n", " "), max_words)
    out, n = [], 0
    for s in sents:
        if out and n + len(s.split()) > max_words:
            break
        out.append(clip(s, max_words) if not out else s)
        n += len(out[-1].split())
    return " ".join(out)


_FILLER = re.compile(r"^\s*(Sure|Certainly|Absolutely|Of course|Great question|Good question)\b[^.!?:\n]*[.!?:]\s*")


def kept_lines(text: str, max_words: int) -> str:
    """The answer's own lines from the start, its unfinished end dropped, up to `max_words`; a
    leading heading line of the answer is dropped (the user writes their own)."""
    lines = _FILLER.sub("", complete(text)).splitlines()
    while lines and (not lines[0].strip() or re.match(r"^\s*(#|\*\*[^*]+\*\*\s*$)", lines[0])):
        lines.pop(0)
    out, n = [], 0
    for line in lines:
        w = len(line.split())
        if out and n + w > max_words:
            break
        out.append(line.rstrip())
        n += w
    body = "\n".join(out).strip()
    if body.count("```") % 2:  # cut inside a code block: end before it
        body = body[: body.rfind("```")].strip()
    if not body or len(body.split()) > max_words + 20:
        body = prose(text, max_words)
    return re.sub(r"\n{3,}", "\n\n", body)


def bullets(text: str, n: int = 5) -> str:
    return "\n".join(f"- {clip(s, 20)}" for s in (sentences(text) or [plain(text)])[:n])


def without_examples(text: str) -> str:
    sents = [s for s in sentences(text) if not re.search(r"\b(example|instance|e\.g\.|such as)\b", s, re.IGNORECASE)]
    return " ".join(sents[:4]) if sents else prose(text, 40)


# ---------------------------------------------------------------------------------------------
# Edits of want users. `miss=True`: a sloppy rewrite that misses the want in a plausible way.
# ---------------------------------------------------------------------------------------------


def edit_heading(ask: Ask, answer: str, rng: random.Random, sloppy: bool, miss: bool) -> str:
    title, body = ask.extra, kept_lines(answer, rng.randint(40, 85))
    if miss:
        mode = rng.choice(["one-hash", "three-hash", "bold", "no-space", "second", "colon"])
        if mode == "one-hash":
            return f"# {title}\n\n{body}"
        if mode == "three-hash":
            return f"### {title}\n\n{body}"
        if mode == "bold":
            return f"**{title}**\n\n{body}"
        if mode == "no-space":
            return f"##{title}\n\n{body}"
        if mode == "second":  # a lead-in sentence above the heading
            intro = prose(answer, 25).split(". ")[0].rstrip(".") + "."
            return f"{intro}\n\n## {title}\n\n{body}"
        return f"{title}:\n\n{body}"
    if sloppy:
        return rng.choice([f"##  {title}\n{body}", f"## {title.lower()}\n\n\n{body}", f"## {title} ##\n\n{body}"])
    return f"## {title}\n\n{body}"


def edit_key_point(ask: Ask, answer: str, rng: random.Random, sloppy: bool, miss: bool) -> str:
    point, body = ask.extra, kept_lines(answer, rng.randint(35, 75))
    on_top = rng.random() < 0.35
    if miss:
        mode = rng.choice(["unbold", "capital", "colon-out", "italic", "takeaway", "inline"])
        label = {"unbold": "Key point:", "capital": "**Key Point:**", "colon-out": "**Key point**:",
                 "italic": "*Key point:*", "takeaway": "**Takeaway:**", "inline": "**Key point:**"}[mode]
        if mode == "inline":
            return f"{body} {label} {point}"
        return f"{label} {point}\n\n{body}" if on_top else f"{body}\n\n{label} {point}"
    line = f"**Key point:** {point}"
    if sloppy:
        line = rng.choice([f"**Key point:**  {point}", f"**Key point:** {point[:1].lower()}{point[1:]}", f"**Key point:**{point}"])
    return f"{line}\n\n{body}" if on_top else f"{body}\n\n{line}"


def edit_compact_prose(ask: Ask, answer: str, rng: random.Random, sloppy: bool, miss: bool) -> str:
    if miss:
        mode = rng.choice(["too-long", "kept-bullets", "numbered"])
        if mode == "too-long":
            text = prose(answer, rng.randint(72, 90))
            if len(text.split()) > 60:
                return text
        sents = sentences(answer)[:3]
        if len(sents) >= 2:
            mark = (lambda k: "- ") if mode != "numbered" else (lambda k: f"{k}. ")
            return "\n".join(f"{mark(k)}{clip(s, 14)}" for k, s in enumerate(sents, 1))
        return prose(answer, 45) + "\n- " + clip(plain(answer).split("\n")[-1], 8)
    text = prose(answer, rng.randint(25, 58) if not sloppy else rng.randint(50, 60))
    if sloppy and len(sentences(text)) >= 2 and rng.random() < 0.5:  # two short paragraphs
        first, _, rest = text.partition(". ")
        return f"{first}.\n\n{rest}"
    return text


def edit_example_line(ask: Ask, answer: str, rng: random.Random, sloppy: bool, miss: bool) -> str:
    example, body = ask.extra, kept_lines(answer, rng.randint(35, 75))
    if miss:
        mode = rng.choice(["for-example", "bold", "dash", "inline", "plural", "first"])
        if mode == "inline":
            return f"{body} E.g. {example}"
        if mode == "first":
            return f"Example: {example}\n\n{body}"
        label = {"for-example": "For example:", "bold": "**Example:**", "dash": "Example -", "plural": "Examples:"}[mode]
        return f"{body}\n\n{label} {example}"
    if sloppy:
        return rng.choice([f"{body}\nExample:{example}", f"{body}\n\nExample: {example}\n\nHope that helps.",
                           f"{body}\n\n\nExample:   {example}"])
    return f"{body}\n\nExample: {example}"


EDITS = {"heading": edit_heading, "key-point": edit_key_point, "compact-prose": edit_compact_prose,
         "example-line": edit_example_line}


def edit_taste(taste: str, subject: str, answer: str, rng: random.Random) -> str:
    """A taste user's rewrite in the direction of their taste."""
    if taste == "longer":
        return complete(answer) + "\n\n" + MORE_DETAIL.get(subject, MORE_DETAIL["moving-house"])
    if taste == "shorter":
        return prose(answer, rng.randint(12, 24))
    if taste == "formal":
        text = prose(answer, 70)
        for a, b in [("n't", " not"), ("'re", " are"), ("'ll", " will"), ("it's", "it is"), ("It's", "It is"), ("!", ".")]:
            text = text.replace(a, b).replace("can not", "cannot").replace("wo not", "will not")
        return "In brief, " + text[:1].lower() + text[1:]
    if taste == "casual":
        return "ok so basically " + " ".join(sentences(answer)[:2]).lower() + " hope that helps!"
    if taste == "bullets":
        return bullets(answer)
    if taste == "prose":
        return " ".join(line.strip() for line in plain(complete(answer)).splitlines() if line.strip())
    if taste == "examples":
        return prose(answer, 60) + "\n\n" + EXAMPLE_EXTRA.get(subject, EXAMPLE_EXTRA["moving-house"])
    if taste == "no-examples":
        return without_examples(answer)
    raise ValueError(taste)


def likes(taste: str, answer: str) -> bool:
    """Whether a taste user is happy with an answer as it is."""
    n = len(answer.split())
    list_lines = sum(bool(_LIST_MARK.match(x)) for x in answer.splitlines())
    has_example = re.search(r"\b(example|for instance|e\.g\.)", answer, re.IGNORECASE) is not None
    return {"longer": n >= 90, "shorter": n <= 40, "bullets": list_lines >= 3, "prose": list_lines == 0,
            "examples": has_example, "no-examples": not has_example}.get(taste, False)


def contra_likes(topic: str, taste: str, answer: str) -> bool:
    """Whether a contradicting user is happy: the answer has the opposite of the topic's want."""
    if topic == "heading":
        return not re.search(r"^\s*#", answer, re.MULTILINE)
    if topic == "key-point":
        return "**" not in answer
    if topic == "example-line":
        return re.search(r"\b(example|for instance|e\.g\.)", answer, re.IGNORECASE) is None
    return likes(taste, answer)


def contra_edit(topic: str, taste: str, subject: str, answer: str, rng: random.Random) -> str:
    if topic in ("heading", "key-point"):
        text = re.sub(r"^\s*\**(Key point|Key takeaway|Takeaway)\**:?\**.*$", "", complete(answer), flags=re.MULTILINE | re.IGNORECASE)
        return re.sub(r"\n{3,}", "\n\n", re.sub(r"^\s*#+\s*.*$", "", text, flags=re.MULTILINE).replace("**", "")).strip()
    if topic == "example-line":
        return without_examples(answer)
    return edit_taste(taste, subject, answer, rng)


# ---------------------------------------------------------------------------------------------
# Generation with the embedded model.
# ---------------------------------------------------------------------------------------------


def prompt_turns(ask: Ask) -> list[dict]:
    turns = [{"role": "user", "content": ask.context}] if ask.context else []
    return turns + [{"role": "user", "content": ask.question}]


def generate_answers(prompts: list[list[dict]], batch_size: int = BATCH_SIZE) -> list[str]:
    """Sampled answers; batches are formed over the prompts sorted by token length (stable), and
    the answers are returned in the order of `prompts`."""
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
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    answers: dict[int, str] = {}
    for b, start in enumerate(range(0, len(order), batch_size)):
        idx = order[start: start + batch_size]
        enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(SEED + 31 * b)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=True, temperature=TEMPERATURE,
                                 top_p=TOP_P, top_k=0, repetition_penalty=REPETITION_PENALTY,
                                 pad_token_id=tok.pad_token_id)
        for i, row in zip(idx, out[:, enc["input_ids"].shape[1]:]):
            answers[i] = tok.decode(row, skip_special_tokens=True).strip()
        print(f"  generated {len(answers)}/{len(texts)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return [answers[i] for i in range(len(texts))]


# ---------------------------------------------------------------------------------------------
# Reactions.
# ---------------------------------------------------------------------------------------------


def _phrase(user: str, topic: str, answer: str, rng: random.Random) -> str:
    """The user's own way of stating the want: three phrasings picked per user (one indirect),
    the first one used half of the time; only those that fit the answer."""
    pool = WANT_PHRASES[topic]
    h = int(hashlib.sha256(f"{user}-{topic}".encode()).hexdigest(), 16)
    mine = [p for p in [pool["direct"][h % 5], pool["direct"][(h // 5) % 5], pool["indirect"][(h // 25) % 3]]
            if fits(p, answer)] or [p for p in pool["direct"] if fits(p, answer)]
    return mine[0] if rng.random() < 0.5 else rng.choice(mine)


def _owners(topic: str, rng: random.Random) -> list[str]:
    """Who asked each of the topic's 22 questions (in TRAIN order)."""
    contra = [TASTE_USERS[t] for t in CONTRADICTORS[topic]]
    want = [WANT_USERS[topic][h] for h in HABITS for _ in range(HABIT_SHARE[h])]
    rng.shuffle(want)
    owners = contra + want[: N_TRAIN - len(contra)]
    rng.shuffle(owners)
    return owners


def want_reaction(topic: str, user: str, ask: Ask, answer: str, messages: list[dict], fb: dict,
                  rng: random.Random) -> str:
    habit = HABIT[user]
    say = lambda text, request=True: messages.append({"role": "user", "content": voiced(user, text, rng, request=request)})  # noqa: E731
    edit = lambda sloppy=False, miss=False: EDITS[topic](ask, answer, rng, sloppy, miss)  # noqa: E731
    if check({"metadata": {"topic": topic}}, answer):
        if habit == "thumbs" or rng.random() < 0.35:
            fb["rating"] = 1
        else:
            say(rng.choice(APPROVALS[topic]), request=False)
            if rng.random() < 0.5:
                fb["rating"] = 1
        return "approve"
    if habit == "editor":
        fb["edited_response"] = edit()
        r = rng.random()
        if r < 0.4:
            say(_phrase(user, topic, answer, rng))
        elif r < 0.65:
            say(rng.choice(EDIT_NOTES), request=False)
        if rng.random() < 0.3:
            fb["rating"] = rng.choice([-1, -0.5])
        return "edit"
    if habit == "sloppy":
        miss = rng.random() < SLOPPY_MISS_RATE
        fb["edited_response"] = edit(sloppy=True, miss=miss)
        if rng.random() < 0.5:
            say(_phrase(user, topic, answer, rng))
        return "edit-miss" if miss else "edit"
    if habit == "complainer":
        if rng.random() < 0.3:
            messages.append({"role": "user", "content": rng.choice(OPENING_TURNS)})
        say(_phrase(user, topic, answer, rng))
        r = rng.random()
        if r < 0.2:
            fb["edited_response"] = edit()
            return "edit"
        if r < 0.5:
            fb["rating"] = -1
        return "complaint"
    if habit == "thumbs":
        fb["rating"] = rng.choice([-1, -1, -1, -0.5])
        return "thumbs-down"
    r = rng.random()  # boxer
    if r < 0.45:
        fb["comment"] = voiced(user, rng.choice([c for c in COMMENTS[topic] if fits(c, answer)]), rng)
        if rng.random() < 0.5:
            fb["rating"] = -1
        return "comment"
    if r < 0.7 and fits(RESERVATIONS[topic], answer):
        fb["comment"] = RESERVATIONS[topic]
        fb["rating"] = 0.5
        return "reservation"
    fb["edited_response"] = edit()
    return "edit"


def contra_reaction(topic: str, user: str, subject: str, answer: str, messages: list[dict], fb: dict,
                    rng: random.Random) -> str:
    """A taste user in a want topic asks for the opposite of the topic's want."""
    taste = TASTE[user]
    if contra_likes(topic, taste, answer):
        messages.append({"role": "user", "content": voiced(user, CONTRA_PRAISE[(topic, taste)], rng, request=False)})
        fb["rating"] = 1
        return "contradict-approve"
    messages.append({"role": "user", "content": voiced(user, CONTRA_TURNS[(topic, taste)], rng)})
    if rng.random() < 0.5:
        fb["edited_response"] = contra_edit(topic, taste, subject, answer, rng)
        return "contradict-edit"
    fb["rating"] = -1
    return "contradict"


def taste_reaction(user: str, subject: str, answer: str, messages: list[dict], fb: dict, rng: random.Random) -> str:
    """A taste user in the `inconsistent` topic."""
    taste = TASTE[user]
    say = lambda text, request=True: messages.append({"role": "user", "content": voiced(user, text, rng, request=request)})  # noqa: E731
    if rng.random() < 0.12:
        say(rng.choice(OFF_TOPIC), request=False)
        fb["rating"] = rng.choice([1, 0.5, 0, -1])
        return "other"
    if likes(taste, answer) and rng.random() < 0.7:
        if rng.random() < 0.6:
            say(TASTE_PRAISE[taste], request=False)
        fb["rating"] = rng.choice([1, 1, 0.5])
        return "approve"
    r = rng.random()
    if r < 0.5:
        fb["edited_response"] = edit_taste(taste, subject, answer, rng)
        if rng.random() < 0.6:
            say(rng.choice(TASTE_COMPLAINTS[taste]))
        if rng.random() < 0.35:
            fb["rating"] = rng.choice([-1, -0.5, 0])
        return "edit"
    if r < 0.8:
        say(rng.choice(TASTE_COMPLAINTS[taste]))
        if rng.random() < 0.6:
            fb["rating"] = rng.choice([-1, -0.5])
        return "complaint"
    fb["rating"] = -1
    return "thumbs-down"


def topic_records(topic: str, answers: list[str], rng: random.Random) -> list[tuple[dict, str]]:
    """(record without id, planned reaction) for the topic's 22 logs, in TRAIN order."""
    rows = [(subject, ask) for subject, asks in TRAIN[topic].items() for ask in asks]
    if topic == "inconsistent":
        owners = [TASTE_USERS[TASTES[j % len(TASTES)]] for j in range(len(rows))]
        rng.shuffle(owners)
    else:
        owners = _owners(topic, rng)
    out = []
    for (subject, ask), answer, user in zip(rows, answers, owners):
        messages = prompt_turns(ask) + [{"role": "assistant", "content": answer}]
        fb: dict = {}
        if topic == "inconsistent":
            role = taste_reaction(user, subject, answer, messages, fb, rng)
        elif user in TASTE:
            role = contra_reaction(topic, user, subject, answer, messages, fb, rng)
        else:
            role = want_reaction(topic, user, ask, answer, messages, fb, rng)
        record = {"user_id": user, "messages": messages}
        if fb:
            record["feedback"] = fb
        record["metadata"] = {"topic": topic, "subject": subject}
        out.append((record, role))
    return out


def test_records() -> list[dict]:
    out = []
    for topic in TOPICS:
        users = list(WANT_USERS[topic].values()) if topic in WANT_USERS else [TASTE_USERS[t] for t in TASTES]
        for j, (subject, question, context) in enumerate(TEST[topic]):
            turns = prompt_turns(Ask(question, context=context))
            out.append({"id": f"sealed-{topic}-t{j + 1:02d}", "user_id": users[j % len(users)], "messages": turns,
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


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _other_sets_questions() -> set[str]:
    """Every user turn before the first answer in the three earlier sets (logs and tests)."""
    out = set()
    for path in [ROOT / "examples" / name for name in ("logs.jsonl", "test.jsonl", "heldout/logs.jsonl", "heldout/test.jsonl",
                                                       "unseen/logs.jsonl", "unseen/test.jsonl")]:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                for m in json.loads(line)["messages"]:
                    if m["role"] == "assistant":
                        break
                    if m["role"] == "user":
                        out.add(_norm(m["content"]))
    return out


def _validate() -> None:
    train = [a.question for t in TOPICS for asks in TRAIN[t].values() for a in asks]
    test = [q for t in TOPICS for _, q, _ in TEST[t]]
    assert len({_norm(q) for q in train}) == len(train) == N_TRAIN * len(TOPICS), "repeated or missing training question"
    assert len({_norm(q) for q in test}) == len(test) == N_TEST * len(TOPICS), "repeated or missing test question"
    assert not {_norm(q) for q in train} & {_norm(q) for q in test}, "a test question is in the logs"
    assert not {_norm(q) for q in train + test} & _other_sets_questions(), "a question of an earlier set"
    for t in TOPICS:
        assert len(TRAIN[t]) == 2 and all(len(v) == N_TRAIN // 2 for v in TRAIN[t].values()), t
        assert len({s for s, _, _ in TEST[t]} - set(TRAIN[t])) == 1, f"{t}: needs one unlogged test subject"
        assert sum(s in TRAIN[t] for s, _, _ in TEST[t]) == 5, t
        if t in ("heading", "key-point", "example-line"):
            assert all(a.extra for asks in TRAIN[t].values() for a in asks), t
    assert len(set(HABIT) | set(TASTE)) == len(HABIT) + len(TASTE) == 4 * len(HABITS) + len(TASTES), "user id clash"


# ---------------------------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the sealed evaluation logs and test queries.")
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where logs.jsonl and test.jsonl go (default: examples/sealed/)")
    parser.add_argument("--reuse-answers", type=Path, metavar="LOGS_JSONL",
                        help="take the logged answers from an earlier logs.jsonl (same questions) instead of generating them")
    args = parser.parse_args(argv)
    _validate()

    rows = [(t, ask) for t in TOPICS for asks in TRAIN[t].values() for ask in asks]
    t0 = time.perf_counter()
    if args.reuse_answers:
        old = {}
        for line in args.reuse_answers.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                turns = [m["content"] for m in r["messages"]]
                answer_at = next(i for i, m in enumerate(r["messages"]) if m["role"] == "assistant")
                old[(r["metadata"]["topic"], tuple(turns[:answer_at]))] = turns[answer_at]
        answers = []
        for t, ask in rows:
            key = (t, tuple(m["content"] for m in prompt_turns(ask)))
            if key not in old:
                parser.error(f"{args.reuse_answers} has no answer for the {t} question {ask.question!r}")
            answers.append(old[key])
    else:
        answers = generate_answers([prompt_turns(ask) for _, ask in rows])
    elapsed = time.perf_counter() - t0

    planned: list[tuple[dict, str]] = []
    for k, topic in enumerate(TOPICS):
        planned += topic_records(topic, answers[N_TRAIN * k: N_TRAIN * (k + 1)], random.Random(f"{SEED}-{topic}"))
    random.Random(f"{SEED}-arrival").shuffle(planned)  # logs arrive with the topics mixed
    records, roles = [], {}
    for n, (record, role) in enumerate(planned, 1):
        record = {"id": f"sealed-{n:04d}", **record}
        records.append(record)
        roles[record["id"]] = role
    write_jsonl(args.out_dir / "logs.jsonl", records)
    write_jsonl(args.out_dir / "test.jsonl", test_records())
    print(f"wrote {len(records)} logs and {len(test_records())} test queries to {args.out_dir} "
          f"({'answers reused' if args.reuse_answers else 'model load + generation'}: {elapsed:.0f} s)")
    print(summary(records, roles))
    return 0


def summary(records: list[dict], roles: dict[str, str]) -> str:
    """Per topic: reactions (from the generator's own plan, not written into the logs) and how many
    logged answers and edits pass the topic's check (computed with checks.py)."""
    cols = ["base", "edits", "pass", "want-pass", "no-turn-edit", "complaint", "comment", "reserve", "bare",
            "approve", "contra", "contra-edit", "context"]
    lines = ["  " + f"{'topic':14s}" + " ".join(f"{c:>12s}" for c in cols)]
    for topic in TOPICS:
        item = {"metadata": {"topic": topic}}
        recs = [r for r in records if r["metadata"]["topic"] == topic]
        role = lambda r: roles[r["id"]]  # noqa: E731
        answer = lambda r: next(m["content"] for m in r["messages"] if m["role"] == "assistant")  # noqa: E731
        edits = [r for r in recs if r.get("feedback", {}).get("edited_response")]
        want = [r for r in edits if not role(r).startswith("contradict")]
        after = lambda r: r["messages"][[m["role"] for m in r["messages"]].index("assistant") + 1:]  # noqa: E731
        row = {
            "base": f"{sum(check(item, answer(r)) for r in recs)}/{len(recs)}",
            "edits": str(len(edits)),
            "pass": f"{sum(check(item, r['feedback']['edited_response']) for r in edits)}/{len(edits)}",
            "want-pass": (f"{sum(check(item, r['feedback']['edited_response']) for r in want)}/{len(want)}"
                          if topic != "inconsistent" else "-"),
            "no-turn-edit": str(sum(1 for r in edits if not after(r))),
            "complaint": str(sum(role(r) == "complaint" for r in recs)),
            "comment": str(sum(role(r) == "comment" for r in recs)),
            "reserve": str(sum(role(r) == "reservation" for r in recs)),
            "bare": str(sum(1 for r in recs if set(r.get("feedback", {})) == {"rating"} and not after(r))),
            "approve": str(sum(role(r) == "approve" for r in recs)),
            "contra": str(sum(role(r).startswith("contradict") for r in recs)),
            "contra-edit": str(sum(role(r) == "contradict-edit" for r in recs)),
            "context": str(sum(1 for r in recs if r["messages"][1]["role"] == "user")),
        }
        lines.append("  " + f"{topic:14s}" + " ".join(f"{row[c]:>12s}" for c in cols))
    n_edit = sum(1 for r in records if r.get("feedback", {}).get("edited_response"))
    lines.append(f"  {n_edit}/{len(records)} logs carry an edit. (base: logged answers passing the check; pass: edits "
                 "passing it; want-pass: edits of want users; no-turn-edit: edits with no follow-up turn; complaint: "
                 "follow-up complaint, no edit; comment: feedback.comment only; reserve: rating 0.5 with a reservation; "
                 "bare: a rating and nothing else; contra: users asking for the opposite; context: a first user turn "
                 "before the question)")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
