use super::*;
use proptest::prelude::*;

/// PII inside ordinary sentences, as Whisper writes them, and what must come out.
const CORPUS_PII: &[(&str, &str)] = &[
    // Cards: test numbers of the big schemes, with and without separators.
    (
        "sure, the card is 4111 1111 1111 1111 expiring in may",
        "sure, the card is [card] expiring in may",
    ),
    ("it's 4111-1111-1111-1111.", "it's [card]."),
    ("my visa is 4539148803436467 okay", "my visa is [card] okay"),
    (
        "amex 3782 822463 10005 is the one",
        "amex [card] is the one",
    ),
    (
        "use 5500 0055 5555 5559, cvv is on the back",
        "use [card], cvv is on the back",
    ),
    ("discover 6011111111111117", "discover [card]"),
    ("diners 30569309025904 please", "diners [card] please"),
    // SSNs.
    (
        "my social is 123-45-6789 and my zip is 90210",
        "my social is [ssn] and my zip is 90210",
    ),
    ("ssn 078 05 1120 thanks", "ssn [ssn] thanks"),
    (
        "my social security number is 219099999",
        "my social security number is [ssn]",
    ),
    (
        "social is one two three, four five, six seven eight nine",
        "social is [ssn]",
    ),
    // Phones.
    (
        "call me at (555) 123-4567 after lunch",
        "call me at [phone] after lunch",
    ),
    (
        "the office line is 555-987-6543.",
        "the office line is [phone].",
    ),
    (
        "try 415.555.2671 or 1-800-555-0199",
        "try [phone] or [phone]",
    ),
    ("my cell is 4155552671", "my cell is [phone]"),
    (
        "from london it's +44 20 7946 0958",
        "from london it's [phone]",
    ),
    ("e164 +14155552671 works", "e164 [phone] works"),
    ("it's +1 (415) 555-2671", "it's [phone]"),
    ("555-123-4567, 555-987-6543", "[phone], [phone]"),
    (
        "my number is five five five one two three four five six seven",
        "my number is [phone]",
    ),
    (
        "it's double five five, one two three, four five six seven",
        "it's [phone]",
    ),
    ("it's 555 one two three 4567", "it's [phone]"),
    // Emails.
    (
        "email jane.doe+work@example.co.uk today",
        "email [email] today",
    ),
    ("it's JOHN_SMITH@Acme-Corp.com.", "it's [email]."),
    ("it's jane dot doe at gmail dot com", "it's [email]"),
    ("write to sales at acme dot io", "write to [email]"),
    (
        "card number five one zero five, one zero five one, zero five one zero, five one zero zero",
        "card number [card]",
    ),
    ("amex 371449635398431 exp 12/27", "amex [card] exp 12/27"),
    ("mail j.smith@mail.example.org.", "mail [email]."),
    ("call 212 555 0100 ext 4", "call [phone] ext 4"),
    ("my social is 123 45 6789.", "my social is [ssn]."),
    // Several kinds in one line.
    (
        "card 4111111111111111, phone 555-123-4567, mail a@b.co",
        "card [card], phone [phone], mail [email]",
    ),
];

/// Look-alikes that carry no PII and must survive untouched.
const CORPUS_SAFE: &[&str] = &[
    "your order number is 4111 1111 1111 1112",
    "order 4532015112830367 shipped",
    "reference 1234-5678-1234-5678 on the invoice",
    "ticket 1234567890123 is closed",
    "we met on 2024-01-15 and again on 12/25/2024",
    "the meeting is at 10:30 or 11:45 tomorrow",
    "it costs $1,299.99 per seat, or $12,500 for the team",
    "a total of $1,234,567,890 across 3 regions",
    "ship it to 90210-1234 please",
    "zip code 10001",
    "invoice 123456789 is overdue",
    "the 4th quarter, sku A1234567890 and 10am",
    "that's 100-200 units, maybe 250",
    "one two three, let's go",
    "oh, one more thing: two or three seats",
    "I counted one, two, three, four, five",
    "version 1.2.3.4 is out",
    "we grew 12.5% to 3,400 customers in 2023",
    "the score was 3-2 in overtime",
    "reach us @ the booth",
    "i'll see you at home dot",
    "ssn 000-12-3456 is not a real one",
    "call extension 4567",
    "ISBN 978-0-306-40615-7 is the second edition",
    "a budget of $4,111,111,111,111 is not a card",
    "flight UA 1234 lands at 6:45 on 12/03",
    "room 4111, floor 11, badge 1111",
    "we have nine, eight, seven reps",
];

#[test]
fn pii_in_sentences_is_replaced() {
    for (input, want) in CORPUS_PII {
        assert_eq!(redact(input), *want, "input: {input}");
    }
}

#[test]
fn look_alikes_survive_unchanged_and_borrowed() {
    for input in CORPUS_SAFE {
        let out = redact(input);
        assert!(
            matches!(out, Cow::Borrowed(_)),
            "redacted a look-alike: {input} -> {out}"
        );
    }
}

#[test]
fn luhn_checks_known_numbers() {
    let digits = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<_>>();
    assert!(luhn_valid(&digits("4111111111111111")));
    assert!(luhn_valid(&digits("378282246310005")));
    assert!(!luhn_valid(&digits("4111111111111112")));
    assert!(!luhn_valid(&[]));
}

#[test]
fn find_reports_kinds_and_offsets() {
    let text = "a 555-123-4567 b x@y.io";
    let spans = find(text);
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].kind, PiiKind::Phone);
    assert_eq!(&text[spans[0].start..spans[0].end], "555-123-4567");
    assert_eq!(spans[1].kind, PiiKind::Email);
}

/// A random card-length number with a correct check digit.
fn card_number() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![4u8, 5, 3, 6]),
        prop::collection::vec(0u8..10, 11..=17),
    )
        .prop_map(|(first, rest)| {
            let mut d = vec![first];
            d.extend(rest);
            // Choose the check digit that makes the whole number pass.
            let check = (0u8..10)
                .find(|c| {
                    let mut all = d.clone();
                    all.push(*c);
                    luhn_valid(&all)
                })
                .unwrap();
            d.push(check);
            d.iter().map(|x| char::from(b'0' + x)).collect()
        })
}

proptest! {
    #[test]
    fn any_luhn_valid_card_in_a_sentence_is_redacted(card in card_number(), grouped in any::<bool>()) {
        let written = if grouped {
            card.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(" ")
        } else {
            card.clone()
        };
        let text = format!("the number is {written} thanks");
        let out = redact(&text);
        prop_assert!(!out.contains(&written), "{} -> {}", text, out);
        prop_assert!(out.contains("[card]") || out.contains("[phone]"), "{} -> {}", text, out);
    }

    #[test]
    fn never_panics_and_keeps_text_without_digits(s in "\\PC{0,200}") {
        let out = redact(&s);
        if !s.bytes().any(|b| b.is_ascii_digit() || b == b'@') && !s.to_ascii_lowercase().contains(" at ") {
            prop_assert_eq!(out.as_ref(), s.as_str());
        }
    }

    #[test]
    fn arbitrary_digit_soup_never_panics(s in "[0-9 ()+.,-]{0,80}") {
        let _ = redact(&s);
    }
}
