//! Best-effort mapping from a key path back to its line in the YAML text.
//!
//! serde_norway reports positions for parse and type errors but not for values that
//! parse fine and then fail a range check. Pointing at the offending line still saves
//! the operator a search, so this scans block-style YAML by indentation. Flow-style
//! mappings and unusual layouts simply yield no location.

/// 1-based (line, column) of the key `path` (e.g. `storage.cache_docs`, `p2p.listen[1]`)
/// in `text`, also trying it under the seed design's `state_management:` wrapper.
pub(crate) fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let segments: Vec<&str> = path.split('.').map(|segment| segment.split('[').next().unwrap_or(segment)).collect();
    find(text, &segments).or_else(|| {
        let wrapped: Vec<&str> = std::iter::once("state_management").chain(segments.iter().copied()).collect();
        find(text, &wrapped)
    })
}

fn find(text: &str, segments: &[&str]) -> Option<(usize, usize)> {
    // Keys currently open, with their indentation.
    let mut open: Vec<(usize, &str)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let content = line.trim_start_matches(' ');
        if content.is_empty() || content.starts_with('#') || content.starts_with('-') {
            continue;
        }
        let indent = line.len() - content.len();
        let Some(key) = key_of(content) else {
            continue;
        };
        while open.last().is_some_and(|&(open_indent, _)| open_indent >= indent) {
            open.pop();
        }
        open.push((indent, key));
        if open.len() == segments.len() && open.iter().map(|&(_, k)| k).eq(segments.iter().copied()) {
            return Some((index + 1, indent + 1));
        }
    }
    None
}

/// The key of a `key: value` or `key:` line, unquoted.
fn key_of(content: &str) -> Option<&str> {
    let end = content.find(": ").or_else(|| content.ends_with(':').then(|| content.len() - 1))?;
    let key = content[..end].trim_end();
    let unquoted = key
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .or_else(|| key.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')));
    Some(unquoted.unwrap_or(key))
}
