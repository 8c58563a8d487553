""".venv/bin/python examples/make_example_logs.py

Writes the example data of the demo and the evaluation: `examples/logs.jsonl` (100 user logs, 20
per topic) and `examples/test.jsonl` (8 held-out queries per topic).

The logged answers are real answers of the embedded default model (SmolLM2-135M-Instruct, loaded
with `uno_graph.models.load_model`): batched greedy generation with the tokenizer's chat template,
left padding, repetition_penalty 1.2, max_new_tokens 120, and a trailing unfinished sentence cut.
The users' reactions are then written by this script from per-topic preferences (see
`examples/checks.py`):

- recipes: numbered steps; geography: one short sentence; python: code in a ```python block;
  travel: the house convention "TL;DR: <one-line summary>" first (a rule the model cannot guess).
  A user complains in a follow-up turn (varied wording); about 70 % of the logs also carry
  `feedback.edited_response` (the logged answer rewritten to satisfy the preference), about 20 %
  only the complaint, and some a rating of -1. An answer that already satisfies the preference
  gets thanks and a rating of 1.
- smalltalk-noisy: inconsistent reactions (longer / shorter, thanks, unrelated complaints,
  digressions, ratings of both signs, contradictory edits): nothing consistent to learn.

The edits: recipes split the answer's sentences into numbered steps; geography keeps the answer's
sentence that states the fact, or the user writes the fact (GEOGRAPHY_FACTS), in <= 25 words; python
is a short working snippet in a ```python block; travel prefixes "TL;DR: <first sentence, shortened>".

Everything is deterministic (greedy decoding, fixed seeds, fixed batches): two runs give identical
files. Generation takes ~5 min on 2 idle CPU cores (longer on a busy machine), plus ~35 s the
first time the default model is converted and cached. `--reuse-answers OLD_LOGS` skips the model.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from checks import check  # noqa: E402

SEED = 1234
BATCH_SIZE = 10
MAX_NEW_TOKENS = 120
REPETITION_PENALTY = 1.2
USERS = [f"u{i}" for i in range(1, 13)]

# ---------------------------------------------------------------------------------------------
# Questions: 20 logged (training) + 8 held-out (test) per topic, all written by hand.
# ---------------------------------------------------------------------------------------------

RECIPES_TRAIN = [
    "How do I make a simple tomato pasta sauce?",
    "How do I cook fluffy rice on the stove?",
    "What's the best way to make scrambled eggs?",
    "How do I bake banana bread?",
    "How do I make pancakes from scratch?",
    "How do I roast a whole chicken?",
    "How can I make homemade pizza dough?",
    "How do I make guacamole?",
    "What's the easiest way to make a vegetable stir-fry?",
    "How do I make a basic vinaigrette for a salad?",
    "How do I cook a steak in a pan?",
    "How do I make chocolate chip cookies?",
    "How do I make a creamy mushroom risotto?",
    "How do I hard boil eggs so they peel easily?",
    "How can I make a quick chicken curry?",
    "How do I make French toast?",
    "How do I make lentil soup?",
    "How do I roast vegetables in the oven?",
    "How do I make a fruit smoothie?",
    "How do I make homemade hummus?",
]
RECIPES_TEST = [
    "How do I make an omelette?",
    "How do I bake a simple sponge cake?",
    "How do I make mashed potatoes?",
    "How do I cook salmon in the oven?",
    "How can I make a classic grilled cheese sandwich?",
    "How do I make beef chili?",
    "How do I make crepes?",
    "How do I make a Greek salad?",
]

# A user's one-sentence edit keeps the answer's own sentence when it states the fact (it contains
# the key phrase and is short enough), else the user writes the fact.
GEOGRAPHY_FACTS = {
    "What is the capital of Australia?": ("is Canberra", "The capital of Australia is Canberra."),
    "Which river flows through Cairo?": ("Nile", "The Nile flows through Cairo."),
    "What is the longest river in South America?": ("Amazon", "The Amazon is the longest river in South America."),
    "What is the capital of Canada?": ("is Ottawa", "The capital of Canada is Ottawa."),
    "Which country has the largest population in Africa?": ("Nigeria", "Nigeria has the largest population in Africa."),
    "What is the highest mountain in the Alps?": ("Mont Blanc", "Mont Blanc, at about 4,800 metres, is the highest mountain in the Alps."),
    "Which ocean lies between Africa and Australia?": ("Indian Ocean", "The Indian Ocean lies between Africa and Australia."),
    "What is the capital of Japan?": ("is Tokyo", "The capital of Japan is Tokyo."),
    "Which countries share a border with Portugal?": ("only with Spain", "Portugal shares a land border only with Spain."),
    "What is the largest country in South America?": ("Brazil is", "Brazil is the largest country in South America."),
    "Where does the Danube river end?": ("into the Black Sea", "The Danube flows into the Black Sea through a delta on the Romania-Ukraine border."),
    "What is the capital city of Kenya?": ("is Nairobi", "The capital of Kenya is Nairobi."),
    "Which desert covers most of northern Africa?": ("Sahara", "The Sahara covers most of northern Africa."),
    "What is the smallest country in the world?": ("Vatican", "Vatican City is the smallest country in the world."),
    "Which river runs through Paris?": ("Seine", "The Seine runs through Paris."),
    "What is the capital of Argentina?": ("Buenos Aires", "The capital of Argentina is Buenos Aires."),
    "Which continent is Mongolia in?": ("in Asia", "Mongolia is in East Asia."),
    "What is the official language of Brazil?": ("Portuguese", "The official language of Brazil is Portuguese."),
    "Which sea does the Volga river flow into?": ("Caspian", "The Volga flows into the Caspian Sea."),
    "What is the capital of New Zealand?": ("Wellington", "The capital of New Zealand is Wellington."),
}
GEOGRAPHY_TEST = [
    "What is the capital of Peru?",
    "Which river flows through London?",
    "What is the largest island in the world?",
    "What is the capital of Norway?",
    "Which two countries share Lake Titicaca?",
    "What is the longest river in Asia?",
    "What is the capital of South Korea?",
    "Which mountain range separates Spain and France?",
]

# (question, the short correct snippet a user pastes into the edited answer)
PYTHON_TRAIN = [
    ("How do I reverse a list in Python?",
     "items = [1, 2, 3, 4]\nreversed_items = items[::-1]\nprint(reversed_items)  # [4, 3, 2, 1]"),
    ("How can I read a CSV file in Python?",
     'import csv\n\nwith open("data.csv", newline="") as f:\n    for row in csv.reader(f):\n        print(row)'),
    ("How do I check if a key exists in a Python dictionary?",
     'person = {"name": "Ada", "age": 36}\nif "name" in person:\n    print(person["name"])'),
    ("How do I remove duplicates from a list but keep the order?",
     "items = [3, 1, 3, 2, 1]\nunique = list(dict.fromkeys(items))\nprint(unique)  # [3, 1, 2]"),
    ("How do I read a text file line by line in Python?",
     'with open("notes.txt", encoding="utf-8") as f:\n    for line in f:\n        print(line.rstrip())'),
    ("How can I sort a list of dictionaries by a key?",
     'people = [{"name": "Bo", "age": 31}, {"name": "Al", "age": 25}]\n'
     'by_age = sorted(people, key=lambda p: p["age"])\nprint(by_age)'),
    ("How do I merge two dictionaries in Python?",
     'a = {"x": 1, "y": 2}\nb = {"y": 3, "z": 4}\nmerged = a | b  # or {**a, **b}\nprint(merged)  # {\'x\': 1, \'y\': 3, \'z\': 4}'),
    ("How do I get the current date and time in Python?",
     "from datetime import datetime\n\nnow = datetime.now()\nprint(now.strftime(\"%Y-%m-%d %H:%M:%S\"))"),
    ("How do I convert a string to an integer in Python?",
     'text = "42"\nnumber = int(text)\nprint(number + 1)  # 43'),
    ("How do I write a function that checks if a number is prime?",
     "def is_prime(n: int) -> bool:\n    if n < 2:\n        return False\n    for d in range(2, int(n ** 0.5) + 1):\n"
     "        if n % d == 0:\n            return False\n    return True\n\nprint(is_prime(17))  # True"),
    ("How can I count how often each word appears in a string?",
     'from collections import Counter\n\ntext = "the cat and the hat"\ncounts = Counter(text.split())\nprint(counts.most_common(2))'),
    ("How do I write a list comprehension that keeps only even numbers?",
     "numbers = [1, 2, 3, 4, 5, 6]\nevens = [n for n in numbers if n % 2 == 0]\nprint(evens)  # [2, 4, 6]"),
    ("How do I parse a JSON string in Python?",
     'import json\n\ndata = json.loads(\'{"name": "Ada", "langs": ["python"]}\')\nprint(data["langs"][0])'),
    ("How do I handle a division by zero error in Python?",
     'try:\n    result = 10 / 0\nexcept ZeroDivisionError:\n    result = None\n    print("cannot divide by zero")'),
    ("How do I list all files in a folder with Python?",
     'from pathlib import Path\n\nfor path in Path("my_folder").iterdir():\n    if path.is_file():\n        print(path.name)'),
    ("How do I join a list of strings with commas?",
     'words = ["apples", "pears", "plums"]\nprint(", ".join(words))  # apples, pears, plums'),
    ("How do I find the largest number in a list without using max()?",
     "numbers = [4, 17, 9, 2]\nlargest = numbers[0]\nfor n in numbers[1:]:\n    if n > largest:\n        largest = n\nprint(largest)  # 17"),
    ("How can I measure how long a function takes to run?",
     "import time\n\nstart = time.perf_counter()\nsum(range(1_000_000))\nprint(f\"took {time.perf_counter() - start:.3f} s\")"),
    ("How do I create a simple class with a constructor in Python?",
     'class Dog:\n    def __init__(self, name: str):\n        self.name = name\n\n    def bark(self) -> str:\n'
     '        return f"{self.name} says woof"\n\nprint(Dog("Rex").bark())'),
    ("How do I flatten a list of lists in Python?",
     "nested = [[1, 2], [3], [4, 5]]\nflat = [x for sub in nested for x in sub]\nprint(flat)  # [1, 2, 3, 4, 5]"),
]
PYTHON_TEST = [
    "How do I capitalize every word in a string in Python?",
    "How can I write a list of rows to a CSV file in Python?",
    "How do I check if a string is a palindrome in Python?",
    "How do I generate a random integer between 1 and 10 in Python?",
    "How can I swap two variables in Python?",
    "How do I get the last element of a list in Python?",
    "How do I save a dictionary to a JSON file in Python?",
    "How do I compute the factorial of a number with a loop in Python?",
]

TRAVEL_TRAIN = [
    "What should I pack for a week in Lisbon in spring?",
    "Is it better to take the train or fly from Paris to Barcelona?",
    "How many days do I need to see the highlights of Rome?",
    "What's the best time of year to visit Japan?",
    "How can I save money on flights to New York?",
    "Do I need a visa to travel from the US to Europe for two weeks?",
    "Any tips for traveling with a toddler on a long flight?",
    "How should I plan a three-day trip to Amsterdam?",
    "Is it safe to drink tap water when traveling in Mexico?",
    "What's a good itinerary for a road trip along the California coast?",
    "How early should I get to the airport for an international flight?",
    "What should I know before renting a car in Iceland?",
    "How can I avoid jet lag when flying to Asia?",
    "Is a rail pass worth it for traveling around Italy?",
    "Which neighborhoods are good to stay in when visiting London?",
    "How do I plan a budget backpacking trip through Southeast Asia?",
    "What travel insurance do I need for a ski trip?",
    "How much cash should I bring when traveling to Thailand?",
    "What's the best way to get from the airport to the city center in Berlin?",
    "Can you help me plan a weekend getaway in the mountains?",
]
TRAVEL_TEST = [
    "What should I pack for a beach holiday in Greece?",
    "How many days should I spend in Paris on my first visit?",
    "Is it better to book hotels in advance or on arrival when backpacking?",
    "What's the cheapest way to travel between cities in Spain?",
    "How do I plan a two-week trip to Vietnam?",
    "What should I know before visiting Morocco for the first time?",
    "How can I make a long layover more comfortable?",
    "What are good day trips from Edinburgh?",
]

SMALLTALK_TRAIN = [
    "Can you recommend a good mystery novel?",
    "What hobby should I pick up this winter?",
    "What's a good movie to watch on a rainy Sunday?",
    "Which fantasy book series would you recommend for a beginner?",
    "I'm bored, any ideas for something fun to do tonight?",
    "What do you think about learning to play the guitar as an adult?",
    "Can you suggest a feel-good comedy movie?",
    "What are some good podcasts for long drives?",
    "Should I read the book or watch the movie first for Dune?",
    "What's a relaxing hobby I can do at home?",
    "Any board game recommendations for a group of friends?",
    "What's your opinion on audiobooks versus paper books?",
    "Can you recommend a classic novel that isn't too long?",
    "What TV series should I binge next if I loved Breaking Bad?",
    "Is painting or drawing easier to start as a hobby?",
    "What's a good documentary about nature?",
    "Recommend me a science fiction book with a great twist.",
    "What are fun hobbies to do with kids?",
    "Which animated movie would you recommend for adults?",
    "What's a good book to read on vacation?",
]
SMALLTALK_TEST = [
    "Can you recommend a good historical fiction novel?",
    "What's a fun hobby that doesn't cost much?",
    "What movie should I watch if I liked Inception?",
    "Any tips for starting a book club?",
    "What's a good horror movie that isn't too scary?",
    "Can you suggest a hobby that gets me outdoors?",
    "What's a good poetry collection for beginners?",
    "Which video game would you recommend for someone who never plays games?",
]

TOPICS = ["recipes", "geography", "python", "travel", "smalltalk-noisy"]
TRAIN = {
    "recipes": RECIPES_TRAIN,
    "geography": list(GEOGRAPHY_FACTS),
    "python": [q for q, _ in PYTHON_TRAIN],
    "travel": TRAVEL_TRAIN,
    "smalltalk-noisy": SMALLTALK_TRAIN,
}
TEST = {
    "recipes": RECIPES_TEST,
    "geography": GEOGRAPHY_TEST,
    "python": PYTHON_TEST,
    "travel": TRAVEL_TEST,
    "smalltalk-noisy": SMALLTALK_TEST,
}
PYTHON_SNIPPETS = dict(PYTHON_TRAIN)

# ---------------------------------------------------------------------------------------------
# The users' words.
# ---------------------------------------------------------------------------------------------

COMPLAINTS = {
    "recipes": [
        "Can you give me the steps as a numbered list? Hard to follow like this.",
        "I'm cooking right now, I need numbered steps, not a paragraph.",
        "Please number the steps. I keep losing my place.",
        "Too much text. Could you break it down into steps 1, 2, 3?",
        "Can you rewrite that as a step-by-step numbered list?",
        "My hands are covered in flour and I can't follow a wall of text. Numbered steps please!",
        "A numbered list of steps would be so much easier to follow in the kitchen.",
        "Just list the steps with numbers please.",
    ],
    "geography": [
        "Too long. I just wanted a one-sentence answer.",
        "Just the fact please, in one short sentence.",
        "I only needed a quick answer, not an essay.",
        "Can you keep it to one line? I'm studying for a quiz.",
        "Way too much detail. A single short sentence is enough.",
        "Shorter please, one sentence max.",
        "I asked a simple question, give me a simple one-sentence answer.",
        "That's a lot of text for a yes/no kind of fact. One sentence would do.",
    ],
    "python": [
        "Can you put the code in a proper python code block? I can't copy it like this.",
        "Please format the code with ```python fences.",
        "Where's the code? Just show me a python snippet in a code block.",
        "The code isn't formatted, give it to me in a ```python block please.",
        "I need an actual code example, in a code block I can copy.",
        "Can you show that as Python code? Fenced, please.",
        "This is hard to read without a code block. Could you wrap it in ```python ... ```?",
        "Just give me the code snippet, properly formatted as a python block.",
    ],
    "travel": [
        "You forgot the TL;DR line at the top. Our answers always start with 'TL;DR:'.",
        "Please start with a 'TL;DR:' summary line, like every answer in this app.",
        "Where's the TL;DR? I need the one-line summary first.",
        "House rule: answers start with 'TL;DR:' and a one-line summary. Can you redo it?",
        "Can you add a TL;DR: at the very beginning? I skim these on my phone.",
        "Missing the TL;DR: line again. Start with it please.",
        "Put a 'TL;DR:' summary first, then the details.",
        "I need the TL;DR: up front, I don't have time to read all of this.",
    ],
}
THANKS = [
    "Perfect, thanks!",
    "Great, that's exactly what I needed.",
    "Thanks, that works for me.",
    "Nice, thank you!",
]

# The noisy topic: (follow-up turn or None, rating or None, edit kind or None, comment or None).
NOISY_REACTIONS = [
    ("Could you say more? That was way too short.", -1, None, None),
    ("That's way too long, just give me one suggestion.", -1, "shorter", None),
    ("Thanks, great suggestion!", 1, None, None),
    ("Hmm, okay I guess.", 0, None, None),
    ("Can you make it longer and explain why you'd pick it?", -0.5, "longer", None),
    ("Shorter next time please.", -1, None, None),
    ("Why does the app keep logging me out?", -1, None, None),
    ("By the way, is it going to rain this weekend?", None, None, None),
    ("ugh, I already know that one", -1, None, None),
    ("My cat just walked across the keyboard lol", None, None, None),
    ("Nice, I'll check it out. Also the dark mode looks weird on my phone.", 0.5, None, None),
    ("Please don't use lists, just talk to me normally.", -1, "prose", None),
    ("Can you use bullet points? Easier to scan.", -1, "bullets", None),
    (None, 1, None, "fun answer"),
    (None, -1, None, "meh"),
    ("This is the perfect length, thank you!", 1, None, None),
    ("Not what I wanted, but I can't say why. Too short and too long at the same time?", -1, None, None),
    ("lol ok. do you like pizza?", 0.5, None, None),
    ("Thanks! Could you add a bit more detail next time?", 1, "longer", None),
    ("Great answer but way too wordy.", 0, "shorter", None),
]

# ---------------------------------------------------------------------------------------------
# Text helpers (deterministic rewrites).
# ---------------------------------------------------------------------------------------------

_SENT_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")


def _is_list_number(text: str, end: int) -> bool:
    """Whether the terminator ending at `end` is the dot of a list marker like '2.'."""
    line_start = text.rfind("\n", 0, end) + 1
    return re.fullmatch(r"\s*\d+[.)]", text[line_start:end]) is not None


def trim_unfinished(text: str) -> str:
    """Cut a trailing unfinished sentence (the generation hit max_new_tokens)."""
    text = text.rstrip()
    ends = [m.end() for m in _SENT_END.finditer(text) if not _is_list_number(text, m.end())]
    if ends and ends[-1] == len(text):
        return text
    if ends and ends[-1] >= 0.3 * len(text):
        return text[: ends[-1]].rstrip()
    return text


def _clean(text: str) -> str:
    """Drop markdown decoration, list markers and code fences; keep the words."""
    text = re.sub(r"```[a-z]*", " ", text)
    text = text.replace("*", "").replace("__", "").replace("`", "")
    text = re.sub(r"^\s*(#+|[-*•]|\d+[.)])\s*", "", text, flags=re.MULTILINE)
    return text


def sentences(text: str) -> list[str]:
    """Sentences of a model answer, markdown removed; lines count as sentence breaks."""
    out = []
    for line in _clean(text).splitlines():
        for part in re.split(r"(?<=[.!?])(?<!\b[A-Z]\.)\s+", line.strip()):  # not after an initial ("John C.")
            part = part.strip()
            if len(part.split()) >= 3:
                out.append(part)
    return out


def shorten(sentence: str, max_words: int) -> str:
    words = sentence.split()
    if len(words) > max_words:
        sentence = " ".join(words[:max_words])
    sentence = sentence.rstrip(" ,;:-—")
    if not sentence.endswith((".", "!", "?")):
        sentence += "."
    return sentence


def edit_recipes(answer: str) -> str:
    steps = [s for s in sentences(answer) if not s.endswith(":")][:6]
    if len(steps) < 3:  # too few sentences: split the long ones at commas and "then"
        steps = [p.strip() for s in steps for p in re.split(r",\s+(?:then\s+|and\s+)?|;\s+", s) if len(p.split()) >= 3][:6]
    fillers = ["Taste and adjust the seasoning.", "Serve right away."]
    while len(steps) < 3:
        steps.append(fillers[len(steps) % 2])
    lines = []
    for i, step in enumerate(steps, 1):
        step = step[0].upper() + step[1:]
        lines.append(f"{i}. {shorten(step, 60)}")
    return "\n".join(lines)


def edit_geography(question: str, answer: str) -> str:
    key, fact = GEOGRAPHY_FACTS[question]
    for sent in sentences(answer):
        if key in sent and len(sent.split()) <= 25 and not re.search(r"[.!?][\"'”’)\]]*\s", sent):
            return shorten(sent, 25)
    return fact


PYTHON_INTROS = ["Here's how:", "Like this:", "You can do it like this:", "Here's a short example:"]


def edit_python(question: str, answer: str) -> str:
    """The user replaces the answer with a short intro and a working snippet in a python block."""
    intro = PYTHON_INTROS[sum(map(ord, question)) % len(PYTHON_INTROS)]
    return f"{intro}\n\n```python\n{PYTHON_SNIPPETS[question]}\n```"


def summary_line(sentence: str, max_words: int = 18) -> str:
    """A one-line summary from a sentence: whole if short, else cut at a clause break or with '...'."""
    words = sentence.split()
    if len(words) <= max_words:
        return shorten(sentence, max_words)
    for i in range(max_words, 5, -1):  # the last clause break that keeps it short
        if words[i - 1].endswith((",", ";", ":")) or words[i] in ("-", "–", "—"):
            return shorten(" ".join(words[:i]), max_words)
    return " ".join(words[: max_words - 4]).rstrip(" ,;:") + "..."


def edit_travel(answer: str) -> str:
    sents = sentences(answer)
    summary = summary_line(sents[0]) if sents else "See the details below."
    return f"TL;DR: {summary}\n\n{answer.strip()}"


def edit_noisy(kind: str, answer: str) -> str:
    sents = sentences(answer)
    if kind == "shorter":  # keep the sentence that names a title, if any
        titled = [x for x in sents if '"' in x] or [x for x in sents if len(x.split()) >= 5] or sents
        return shorten(titled[0], 40) if titled else answer.strip()
    if kind == "longer":
        return answer.strip() + "\n\nI'd also add that it depends a lot on your mood and how much time you have, so try a couple and see what sticks."
    if kind == "bullets":
        return "\n".join(f"- {shorten(x, 200)}" for x in sents[:5]) or answer.strip()
    if kind == "prose":
        return " ".join(shorten(x, 200) for x in sents) or answer.strip()
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------------
# Generation with the embedded model.
# ---------------------------------------------------------------------------------------------


def generate_answers(questions: list[str], batch_size: int = BATCH_SIZE) -> list[str]:
    import torch

    from uno_graph.models import load_model

    torch.manual_seed(SEED)
    t0 = time.perf_counter()
    lm = load_model()
    tok, model = lm.tokenizer, lm.model
    print(f"  model loaded in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    tok.padding_side = "left"
    answers: list[str] = []
    for start in range(0, len(questions), batch_size):
        batch = questions[start : start + batch_size]
        prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
                   for q in batch]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                                 repetition_penalty=REPETITION_PENALTY, pad_token_id=tok.pad_token_id)
        for row in out[:, enc["input_ids"].shape[1] :]:
            finished = bool((row == tok.eos_token_id).any())
            text = tok.decode(row, skip_special_tokens=True).strip()
            answers.append(text if finished else trim_unfinished(text))
        print(f"  generated {len(answers)}/{len(questions)}", file=sys.stderr, flush=True)
    return answers


# ---------------------------------------------------------------------------------------------
# Records.
# ---------------------------------------------------------------------------------------------


def checkable_records(topic: str, questions: list[str], answers: list[str], rng: random.Random) -> list[dict]:
    item = {"metadata": {"topic": topic}}
    failing = [i for i, a in enumerate(answers) if not check(item, a)]
    order = failing[:]
    rng.shuffle(order)
    n_edit = round(0.7 * len(failing))
    n_complaint_only = round(0.2 * len(failing))
    kind = {}
    for rank, i in enumerate(order):
        if rank < n_edit:
            kind[i] = "edit"
        elif rank < n_edit + n_complaint_only:
            kind[i] = "complaint"
        else:
            kind[i] = "thumbs-down"
    complaints = COMPLAINTS[topic][:]
    rng.shuffle(complaints)
    records = []
    for i, (q, a) in enumerate(zip(questions, answers)):
        messages = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        feedback: dict = {}
        if i not in kind:  # the answer already satisfies the preference
            messages.append({"role": "user", "content": rng.choice(THANKS)})
            feedback["rating"] = 1
        else:
            messages.append({"role": "user", "content": complaints[i % len(complaints)]})
            if kind[i] == "edit":
                if topic == "recipes":
                    feedback["edited_response"] = edit_recipes(a)
                elif topic == "geography":
                    feedback["edited_response"] = edit_geography(q, a)
                elif topic == "python":
                    feedback["edited_response"] = edit_python(q, a)
                else:
                    feedback["edited_response"] = edit_travel(a)
                assert check(item, feedback["edited_response"]), (topic, feedback["edited_response"])
                if rng.random() < 0.3:
                    feedback["rating"] = -1
            elif kind[i] == "thumbs-down":
                feedback["rating"] = -1
        records.append(_record(topic, i, q, messages, feedback, rng))
    return records


def noisy_records(questions: list[str], answers: list[str], rng: random.Random) -> list[dict]:
    reactions = NOISY_REACTIONS[:]
    rng.shuffle(reactions)
    records = []
    for i, (q, a) in enumerate(zip(questions, answers)):
        turn, rating, edit, comment = reactions[i % len(reactions)]
        messages = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        if turn:
            messages.append({"role": "user", "content": turn})
        feedback: dict = {}
        if rating is not None:
            feedback["rating"] = rating
        if edit:
            feedback["edited_response"] = edit_noisy(edit, a)
        if comment:
            feedback["comment"] = comment
        records.append(_record("smalltalk-noisy", i, q, messages, feedback, rng))
    return records


def _record(topic: str, i: int, question: str, messages: list[dict], feedback: dict, rng: random.Random) -> dict:
    record = {"id": f"{topic}-{i + 1:03d}", "user_id": rng.choice(USERS), "messages": messages}
    if feedback:
        record["feedback"] = feedback
    record["metadata"] = {"topic": topic}
    return record


def test_records() -> list[dict]:
    return [{"id": f"{topic}-t{j + 1:02d}", "messages": [{"role": "user", "content": q}], "metadata": {"topic": topic}}
            for topic in TOPICS for j, q in enumerate(TEST[topic])]


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where logs.jsonl and test.jsonl go (default: examples/)")
    parser.add_argument("--reuse-answers", type=Path, metavar="LOGS_JSONL",
                        help="take the logged answers from an earlier logs.jsonl (same ids) instead of generating "
                             "them; for editing the reactions without waiting for the model")
    args = parser.parse_args(argv)

    for topic in TOPICS:
        assert len(TRAIN[topic]) == 20 and len(TEST[topic]) == 8, topic
        assert len(set(TRAIN[topic]) | set(TEST[topic])) == 28, f"{topic}: repeated question"

    questions = [(topic, q) for topic in TOPICS for q in TRAIN[topic]]
    t0 = time.perf_counter()
    if args.reuse_answers:
        old = {}
        for line in args.reuse_answers.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            old[r["messages"][0]["content"]] = r["messages"][1]["content"]
        answers = [old[q] for _, q in questions]
    else:
        answers = generate_answers([q for _, q in questions])
    elapsed = time.perf_counter() - t0

    records = []
    for k, topic in enumerate(TOPICS):
        rng = random.Random(f"{SEED}-{topic}")
        qs = TRAIN[topic]
        ans = answers[20 * k : 20 * (k + 1)]
        if topic == "smalltalk-noisy":
            records += noisy_records(qs, ans, rng)
        else:
            records += checkable_records(topic, qs, ans, rng)
    write_jsonl(args.out_dir / "logs.jsonl", records)
    write_jsonl(args.out_dir / "test.jsonl", test_records())

    print(f"wrote {len(records)} logs and {sum(len(v) for v in TEST.values())} test queries to {args.out_dir} "
          f"(model load + generation: {elapsed:.0f} s)")
    for k, topic in enumerate(TOPICS):
        ans = answers[20 * k : 20 * (k + 1)]
        ok = sum(check({"metadata": {"topic": topic}}, a) for a in ans)
        print(f"  {topic:16s} logged answers already satisfying the check: {ok}/20")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
