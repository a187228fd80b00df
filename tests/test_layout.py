"""The file reads beside the tutorial (issue 8): its story first, its replay line for line.
The tables of changes and the counts the docs give are checked in test_docs.py."""
import ast
import difflib
import re

from conftest import SCRIPT

SOURCE = SCRIPT.read_text()
MARK = "\n# Beyond the tutorial\n"
FIRST_PART, SECOND_PART = SOURCE.split(MARK)

# The tutorial's replay (section "0# DQL Agent"), as it printed it.
TUTORIAL_REPLAY = """
def replay(self, sample_batch_size):
    if len(self.memory) < sample_batch_size:
        return
    sample_batch = random.sample(self.memory, sample_batch_size)
    for state, action, reward, next_state, done in sample_batch:
        target = reward
        if not done:
          target = reward + self.gamma * np.amax(self.brain.predict(next_state)[0])
        target_f = self.brain.predict(state)
        target_f[0][action] = target
        self.brain.fit(state, target_f, epochs=1, verbose=0)
    if self.exploration_rate > self.exploration_min:
        self.exploration_rate *= self.exploration_decay
"""


def code_lines(text):
    """Lines of code, without comments, docstrings, blank lines or indentation."""
    lines = []
    for line in text.splitlines():
        line = line.split("#")[0].strip() if not line.strip().startswith("#") else ""
        if line and not line.startswith('"""'):
            lines.append(line)
    return lines


def test_the_tutorial_comes_first_and_the_rest_after_one_line():
    assert SOURCE.count(MARK) == 1
    tree = ast.parse(FIRST_PART)
    defined = [node.name for node in tree.body
               if isinstance(node, (ast.ClassDef, ast.FunctionDef))]
    assert defined == ["Agent", "CartPole", "main"]
    agent = next(node for node in tree.body if getattr(node, "name", "") == "Agent")
    methods = [node.name for node in agent.body if isinstance(node, ast.FunctionDef)]
    assert methods[:6] == ["__init__", "_build_model", "save_model", "act", "remember", "replay"]
    cartpole = next(node for node in tree.body if getattr(node, "name", "") == "CartPole")
    assert [node.name for node in cartpole.body if isinstance(node, ast.FunctionDef)] == [
        "__init__", "run"]
    # The tutorial's render line, commented out where it was, first in the step loop, at the
    # loop body's own indentation (see test_render for what uncommenting it does).
    run = ast.get_source_segment(FIRST_PART, cartpole.body[-1])
    assert re.search(r"while not done:\n( +)# Tutorial: [^\n]*\n\1#self\.env\.render\(\)\n\1\S", run)
    # Nothing of the second part is defined in the first.
    second = ast.parse(SECOND_PART.split("\n", 3)[-1])
    assert {"TargetAgent", "Stop", "FastBrain", "Progress", "parse_args"} <= {
        node.name for node in second.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))}


def test_the_tutorial_is_at_the_front_and_short():
    lines = SOURCE.splitlines()
    # Before class Agent: the docstring, the imports and TensorFlow's two settings.
    before = lines[:lines.index("class Agent():")]
    assert len(before) < 30
    code = [line for line in before if line.strip() and not line.startswith(("#", " ", '"'))
            and line != '"""']
    assert all(line.startswith(("import ", "from ", "os.environ.setdefault(", "The tutorial",
                                "CartPole first", "함께하는"))
               for line in code), code
    assert len(FIRST_PART.rstrip("\n#= ").splitlines()) <= 200
    tree = ast.parse(SOURCE)
    others = [node.lineno for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))
              and node.name not in ("Agent", "CartPole", "main")]
    assert min(others) <= 210


def test_brain_is_a_plain_attribute():
    import cartpole_dqn
    assert "brain" not in vars(cartpole_dqn.Agent), "a property behind self.brain = ..."
    agent = cartpole_dqn.Agent(4, 2, "none.h5")
    assert "brain" in vars(agent)


def test_replay_differs_from_the_tutorials_in_its_two_calls_only():
    tree = ast.parse(FIRST_PART)
    agent = next(node for node in tree.body if getattr(node, "name", "") == "Agent")
    replay = next(node for node in agent.body if getattr(node, "name", "") == "replay")
    ours = code_lines(ast.get_source_segment(FIRST_PART, replay))
    theirs = code_lines(TUTORIAL_REPLAY)
    changed = sorted(line for line in difflib.ndiff(theirs, ours) if line[:1] in "+-")
    assert changed == sorted([
        "- target = reward + self.gamma * np.amax(self.brain.predict(next_state)[0])",
        "- target_f = self.brain.predict(state)",
        "- self.brain.fit(state, target_f, epochs=1, verbose=0)",
        "+ target = reward + self.gamma * np.amax(self.predict(next_state)[0])",
        "+ target_f = self.predict(state)",
        "+ self.fit(state, target_f)",
    ])
