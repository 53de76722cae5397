package enginetest

// ListsFeatures declares a mutable list and a feature filtered on it,
// for the tests of lists in decisions and of the list API.
const ListsFeatures = `lists:
  watched_cards: {mutable: true}
features:
  - name: card_payments_1h
    kind: count
    key: card_id
    window: 1h
    event_types: [payment]
  - name: watched_card_payments_1h
    kind: count
    key: account_id
    window: 1h
    event_types: [payment]
    where: event.card_id in lists.watched_cards
`

// ListsRuleset scores payments against a file list and a mutable one.
const ListsRuleset = `name: payment
event_types: [payment]
thresholds: {step_up: 50, block: 90}
lists:
  blocked_cards: {file: lists/blocked_cards.txt}
  blocked_cards_api: {mutable: true}
rules:
  - id: blocked_card
    when: event.card_id in lists.blocked_cards || event.card_id in lists.blocked_cards_api
    action: block
    reason: "card {{event.card_id}} is blocked"
  - id: watched
    when: features.watched_card_payments_1h >= 1 && features.card_payments_1h >= 0
    score: 10
`
