"""theo/realtime/partials.py: partial text is what two decodes agree on, and never taken back."""

from __future__ import annotations

from theo.realtime.partials import PartialText, agreed_words


def test_agreement_stops_at_the_first_word_that_differs() -> None:
    before, now = "He went to the", "He went to the store."
    assert agreed_words(before.split(" "), now.split(" ")) == [
        "He",
        "went",
        "to",
        "the",
    ]
    assert agreed_words(["store."], ["store,"]) == []  # punctuation counts


def test_deltas_are_sent_once_two_decodes_agree_and_add_up_to_the_final_text() -> None:
    text = PartialText()
    assert text.update("He hoped") == ""  # one decode: nothing agreed yet
    assert text.update("He hoped there would") == "He hoped"
    assert text.update("He hoped there would be stew") == " there would"
    assert text.update("He hoped there would be stew for dinner.") == " be stew"
    delta, consistent = text.final("He hoped there would be stew for dinner, turnips.")
    assert consistent and delta == " for dinner, turnips."
    assert text.text == "He hoped there would be stew for dinner, turnips."


def test_nothing_sent_is_taken_back() -> None:
    text = PartialText()
    text.update("The cat sat")
    assert text.update("The cat sat on") == "The cat sat"
    assert text.update("The hat sat on the mat") == ""  # disagrees with what was sent
    assert text.update("The cat sat on the mat") == ""  # agrees with the sent, not the last
    assert text.update("The cat sat on the mat.") == " on the"  # "mat" vs "mat."
    delta, consistent = text.final("A cat sat on the mat.")
    assert (delta, consistent) == (" mat.", False)  # completed carries the final decode


def test_a_final_decode_that_changed_sent_words_still_completes_the_deltas() -> None:
    text = PartialText()
    text.update("turnips and carrots and bruised potatoes and")
    text.update("turnips and carrots and bruised potatoes and fat")
    assert text.text == "turnips and carrots and bruised potatoes and"
    final = "Turnips and carrots and bruised potatoes, and fat mutton pieces."
    assert text.final(final) == (" fat mutton pieces.", False)
    words = PartialText()
    words.update("He hoped there would be")
    words.update("He hoped there would be stew")
    # Two sent words changed: as many final words stand for them.
    assert words.final("He hoped their wood be stew for dinner.") == (" stew for dinner.", False)


def test_without_partials_the_final_text_is_one_delta() -> None:
    text = PartialText()
    assert text.final("Hello there.") == ("Hello there.", True)
    assert PartialText().final("") == ("", True)
