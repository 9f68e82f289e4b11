//! The spec files of one run: their paths and texts, with line/column lookup.

use crate::span::FileId;

/// One loaded file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    path: String,
    text: String,
    /// Byte offset of the start of every line.
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// The path as the user gave it.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// 0-based index of the line holding byte `offset` (offsets past the end map to the last line).
    pub fn line_index(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|&start| start <= offset)
            .saturating_sub(1)
    }

    /// Byte range of 0-based line `line`, without its line break; `None` past the last line.
    pub fn line_range(&self, line: usize) -> Option<std::ops::Range<usize>> {
        let start = *self.line_starts.get(line)?;
        let end = self
            .line_starts
            .get(line + 1)
            .copied()
            .unwrap_or(self.text.len());
        let content = self.text.get(start..end).unwrap_or("");
        let trimmed = content.trim_end_matches(['\n', '\r']).len();
        Some(start..start + trimmed)
    }

    /// 1-based line and column of byte `offset`; the column counts characters, not bytes.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_index(offset);
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(0, |prefix| prefix.chars().count());
        (line + 1, column + 1)
    }
}

/// All files of a run, addressed by [`FileId`] in the order they were added.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> Self {
        SourceMap::default()
    }

    /// Adds a file; `path` is kept as given, for messages.
    pub fn add(&mut self, path: impl Into<String>, text: impl Into<String>) -> FileId {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let id = FileId(u32::try_from(self.files.len()).unwrap_or(u32::MAX));
        self.files.push(SourceFile {
            path: path.into(),
            text,
            line_starts,
        });
        id
    }

    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(usize::try_from(id.0).ok()?)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Files with their ids, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(u32::try_from(i).unwrap_or(u32::MAX)), f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let mut map = SourceMap::new();
        let id = map.add("a.yml", "ab\né: x\n");
        let file = map.get(id);
        assert_eq!(file.map(|f| f.line_col(0)), Some((1, 1)));
        assert_eq!(file.map(|f| f.line_col(3)), Some((2, 1)));
        // `x` is byte 7 but the 4th character of line 2.
        assert_eq!(file.map(|f| f.line_col(7)), Some((2, 4)));
        assert_eq!(file.map(|f| f.line_col(100)), Some((3, 1)));
        assert_eq!(file.and_then(|f| f.line_range(1)), Some(3..8));
    }

    #[test]
    fn ids_follow_insertion_order() {
        let mut map = SourceMap::new();
        let a = map.add("a", "");
        let b = map.add("b", "");
        assert_eq!((a, b), (FileId(0), FileId(1)));
        assert_eq!(map.get(b).map(SourceFile::path), Some("b"));
        assert!(map.get(FileId(2)).is_none());
    }
}
