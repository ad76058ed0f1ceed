//! A small delimited-text reader for training data: RFC 4180 quoting (`"a;b"`, `""` for a
//! quote), `,` `;` or tab separators detected from the header, CRLF or LF line ends.

/// Most columns a training file may have; far above any CRM export and a bound on memory when a
/// binary file is passed by mistake.
pub const MAX_COLUMNS: usize = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CsvError {
    #[error("the file is empty")]
    Empty,
    #[error("line {line}: expected {expected} fields, found {found}")]
    Width {
        line: usize,
        expected: usize,
        found: usize,
    },
    #[error("line {0}: unterminated quoted field")]
    Unterminated(usize),
    #[error("more than {MAX_COLUMNS} columns")]
    TooWide,
}

/// A parsed table: header names and rows of fields (all the same width).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

/// Picks the separator that splits the header into the most fields (outside quotes).
pub fn detect_delimiter(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or("");
    let count = |d: u8| {
        let mut in_quotes = false;
        header
            .bytes()
            .filter(|&b| {
                if b == b'"' {
                    in_quotes = !in_quotes;
                }
                !in_quotes && b == d
            })
            .count()
    };
    [b';', b',', b'\t']
        .into_iter()
        .max_by_key(|&d| count(d))
        .unwrap_or(b',')
}

/// Parses `text` with separator `delim`; the first record is the header. Blank lines are
/// skipped; every other record must have as many fields as the header.
pub fn parse(text: &str, delim: u8) -> Result<Table, CsvError> {
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut line = 1;
    let mut record_line = 1;
    let mut chars = text.chars().peekable();
    let delim = char::from(delim);
    let mut field_started = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if !field_started => {
                in_quotes = true;
                field_started = true;
            }
            c if c == delim => {
                record.push(std::mem::take(&mut field));
                field_started = false;
                if record.len() > MAX_COLUMNS {
                    return Err(CsvError::TooWide);
                }
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                end_record(&mut records, &mut record, &mut field, record_line);
                field_started = false;
                line += 1;
                record_line = line;
            }
            _ => {
                field.push(c);
                field_started = true;
            }
        }
    }
    if in_quotes {
        return Err(CsvError::Unterminated(record_line));
    }
    end_record(&mut records, &mut record, &mut field, record_line);

    let mut it = records.into_iter();
    let (_, header) = it.next().ok_or(CsvError::Empty)?;
    let mut rows = Vec::new();
    for (line, row) in it {
        if row.len() != header.len() {
            return Err(CsvError::Width {
                line,
                expected: header.len(),
                found: row.len(),
            });
        }
        rows.push(row);
    }
    Ok(Table {
        header: header.into_iter().map(|h| h.trim().to_owned()).collect(),
        rows,
    })
}

fn end_record(
    records: &mut Vec<(usize, Vec<String>)>,
    record: &mut Vec<String>,
    field: &mut String,
    line: usize,
) {
    if record.is_empty() && field.trim().is_empty() {
        field.clear();
        return;
    }
    record.push(std::mem::take(field));
    records.push((line, std::mem::take(record)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_uci_style_with_quotes_and_semicolons() {
        let text = "\"age\";\"job\";\"y\"\r\n30;\"blue-collar\";\"no\"\r\n\r\n39;\"a;b \"\"c\"\"\";\"yes\"\r\n";
        assert_eq!(detect_delimiter(text), b';');
        let t = parse(text, b';').unwrap();
        assert_eq!(t.header, ["age", "job", "y"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[1][1], "a;b \"c\"");
        assert_eq!(t.column("y"), Some(2));
    }

    #[test]
    fn ragged_rows_and_open_quotes_are_errors() {
        assert_eq!(
            parse("a,b\n1\n", b','),
            Err(CsvError::Width {
                line: 2,
                expected: 2,
                found: 1
            })
        );
        assert_eq!(parse("a,b\n\"1,2\n", b','), Err(CsvError::Unterminated(2)));
        assert_eq!(parse("", b','), Err(CsvError::Empty));
    }

    proptest! {
        /// Any table of fields written with RFC 4180 quoting reads back as itself.
        #[test]
        fn quoted_tables_round_trip(rows in prop::collection::vec(
            prop::collection::vec("[a-z0-9 ;,\"\n]{0,8}", 3), 1..10)) {
            let quote = |f: &str| format!("\"{}\"", f.replace('"', "\"\""));
            let text: String = rows
                .iter()
                .map(|r| r.iter().map(|f| quote(f)).collect::<Vec<_>>().join(";") + "\n")
                .collect();
            let t = parse(&text, b';').unwrap();
            let mut all = vec![t.header.clone()];
            all.extend(t.rows.clone());
            let want: Vec<Vec<String>> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| if i == 0 { r.iter().map(|h| h.trim().to_owned()).collect() } else { r.clone() })
                .collect();
            prop_assert_eq!(all, want);
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
            let _ = parse(&s, detect_delimiter(&s));
        }
    }
}
