"""The UNO graph's nodes: route → expert_generate | base_generate → critique → revise | rules_generate (→ record)."""

from uno_graph.nodes.critique import make_critique
from uno_graph.nodes.generate import make_base_generate, make_expert_generate, make_rules_generate
from uno_graph.nodes.record import make_record, with_followups
from uno_graph.nodes.revise import make_revise
from uno_graph.nodes.route import make_route, next_after_base, next_after_route

__all__ = ["make_base_generate", "make_critique", "make_expert_generate", "make_record", "make_revise", "make_route", "make_rules_generate",
           "next_after_base", "next_after_route", "with_followups"]
