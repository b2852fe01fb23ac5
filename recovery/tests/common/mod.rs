//! Hand-built recovery directories for engine tests: a tiny image and a journal written record
//! by record, so each test states exactly the history it recovers.

#![allow(dead_code, missing_docs)]

use std::path::{Path, PathBuf};

use recovery::dir::{IMAGE_FILE, JOURNAL_DIR};
use recovery::format::record::{AllocTarget, Record};
use recovery::format::writer::{JournalWriter, SegmentInfo, WriterConfig};
use recovery::image::{BitRegion, Geometry, Layout};

pub const BS: usize = 4096;
pub const IMAGE_ID: u64 = 0xfeed_0001;

pub fn layout() -> Layout {
    Layout::new(Geometry { block_size: BS as u32, block_count: 64, inode_count: 128, image_id: IMAGE_ID })
        .expect("layout")
}

/// A directory with a formatted image whose data blocks hold `fill(block)` bytes.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub layout: Layout,
    pub writer: Option<JournalWriter>,
    pub segments: Vec<SegmentInfo>,
}

impl Fixture {
    pub fn new(steal: bool) -> Self {
        Self::with_config(WriterConfig {
            block_size: 4096,
            segment_blocks: 80,
            image_id: IMAGE_ID,
            image_block_size: BS as u32,
            steal,
            salt_seed: 99,
        })
    }

    pub fn with_config(cfg: WriterConfig) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = layout();
        let mut image = vec![0u8; layout.image_len() as usize];
        image[..BS].copy_from_slice(&layout.encode_superblock());
        for b in layout.data_start()..layout.block_count() {
            image[b as usize * BS..(b as usize + 1) * BS].fill(b as u8);
        }
        std::fs::write(tmp.path().join(IMAGE_FILE), &image).expect("write image");
        let writer = JournalWriter::create(&tmp.path().join(JOURNAL_DIR), cfg).expect("writer");
        Fixture { tmp, layout, writer: Some(writer), segments: Vec::new() }
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn append(&mut self, txid: u64, rec: Record<'_>) -> recovery::format::writer::Appended {
        self.writer.as_mut().expect("writer open").append(txid, &rec).expect("append")
    }

    pub fn finish(&mut self) -> Vec<SegmentInfo> {
        if let Some(w) = self.writer.take() {
            self.segments = w.finish().expect("finish");
        }
        self.segments.clone()
    }

    pub fn image(&self) -> Vec<u8> {
        std::fs::read(self.dir().join(IMAGE_FILE)).expect("read image")
    }

    pub fn block(&self, b: u64) -> Vec<u8> {
        self.image()[b as usize * BS..(b as usize + 1) * BS].to_vec()
    }

    pub fn bit(&self, region: BitRegion, index: u64) -> bool {
        let p = self.layout.bit(region, index).expect("bit in range");
        self.image()[p.block as usize * BS + p.byte] & p.mask != 0
    }

    /// Writes bytes straight into the image (a flush or an unlogged write).
    pub fn poke(&self, block: u64, offset: usize, bytes: &[u8]) {
        let mut img = self.image();
        let at = block as usize * BS + offset;
        img[at..at + bytes.len()].copy_from_slice(bytes);
        std::fs::write(self.dir().join(IMAGE_FILE), img).expect("write image");
    }

    pub fn set_bit(&self, region: BitRegion, index: u64, value: bool) {
        let p = self.layout.bit(region, index).expect("bit");
        let mut img = self.image();
        let at = p.block as usize * BS + p.byte;
        if value {
            img[at] |= p.mask;
        } else {
            img[at] &= !p.mask;
        }
        std::fs::write(self.dir().join(IMAGE_FILE), img).expect("write image");
    }

    pub fn segment_path(&self, i: usize) -> PathBuf {
        self.segments[i].path.clone()
    }
}

pub fn write<'a>(block: u64, offset: u32, redo: &'a [u8], undo: Option<&'a [u8]>) -> Record<'a> {
    Record::Write { block, offset, redo, undo, full: false, compensation: false }
}

pub fn full<'a>(block: u64, redo: &'a [u8], undo: Option<&'a [u8]>) -> Record<'a> {
    Record::Write { block, offset: 0, redo, undo, full: true, compensation: false }
}

pub fn alloc(target: AllocTarget, index: u64) -> Record<'static> {
    Record::Bitmap { target, index, set: true, compensation: false }
}

pub fn free(target: AllocTarget, index: u64) -> Record<'static> {
    Record::Bitmap { target, index, set: false, compensation: false }
}

pub fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset as usize] ^= 0x40;
    std::fs::write(path, bytes).expect("write");
}
