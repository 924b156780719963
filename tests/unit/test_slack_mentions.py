"""The prompt of a mention: Slack's `<@U…>` tokens removed, whitespace collapsed."""

from eve.slack.app import strip_mentions


def test_strip_mentions_keeps_the_words_only():
    assert strip_mentions("<@U0BOT> now add tests") == "now add tests"
    assert strip_mentions("please <@U0BOT|eve>   ask <@U0BOB> too\n") == "please ask too"
    assert strip_mentions("<@U0BOT>") == ""
    assert strip_mentions("a <!channel> stays text") == "a <!channel> stays text"
