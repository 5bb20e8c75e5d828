"""Event routing's matching engine: EventBridge event patterns and SNS filter policies.

One language (AWS's event-ruler rules), two dialects, one compiled form:

- `event_pattern(pattern) -> Pattern` and `test_event_pattern(pattern, event)`:
  EventBridge (`squall.routing.patterns`), raising `InvalidEventPattern`;
- `filter_policy(policy, scope) -> FilterPolicy` and `test_filter_policy(...)`: SNS
  (`squall.routing.policies`), raising `InvalidFilterPolicy`; `FilterPolicy.document(
  message_attributes, body)` is what its `.pattern` is matched against;
- `Pattern.matches(document)`: one pattern against a parsed JSON document;
- `Rules`: many patterns by id, `Rules.matching(document) -> set[id]`, at a cost that
  grows far slower than the number of rules (`squall.routing.rules`).

Sources that route (topics, the event bus, event source filters) compile their patterns
at declaration, so a bad one fails the app's load, and match at delivery.
"""

from squall.errors import InvalidEventPattern, InvalidFilterPolicy
from squall.routing.patterns import event_pattern, test_event_pattern
from squall.routing.policies import FilterPolicy, FilterScope, filter_policy, test_filter_policy
from squall.routing.rules import Rules
from squall.routing.tree import Pattern

__all__ = ["FilterPolicy", "FilterScope", "InvalidEventPattern", "InvalidFilterPolicy", "Pattern", "Rules",
           "event_pattern", "filter_policy", "test_event_pattern", "test_filter_policy"]
