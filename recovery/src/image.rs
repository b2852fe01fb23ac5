//! The home location: an image file of fixed-size blocks.
//!
//! Block 0 is the superblock. Then come three bitmaps - block allocation, inode-slot
//! allocation, and the orphan list (one bit per inode slot: set means the inode is on the
//! list) - and then the data region. Physical writes go to data blocks only; bitmap changes
//! are logged as bit operations.

use std::ops::Range;
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::{le_u32, le_u64};

/// Magic bytes at offset 0 of the superblock.
pub const IMAGE_MAGIC: [u8; 8] = *b"FRECIMG1";
/// Image format version.
pub const IMAGE_VERSION: u32 = 1;
/// Largest image the format allows (1 PiB), so every byte offset fits in a `u64` and a `usize`
/// on 64-bit machines.
pub const IMAGE_BYTES_MAX: u64 = 1 << 50;
/// Encoded size of the superblock fields; the rest of block 0 is zero.
pub const SUPERBLOCK_LEN: usize = 128;

/// The parameters an image is created from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Geometry {
    /// Block size in bytes: a power of two from 512 to 65536. Default 4096.
    pub block_size: u32,
    /// Total blocks, metadata included.
    pub block_count: u64,
    /// Number of inode slots (bits in the inode and orphan bitmaps).
    pub inode_count: u64,
    /// Identity of the image; the journal records it so a foreign journal is refused.
    pub image_id: u64,
}

/// Which bitmap a bit lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BitRegion {
    /// Block allocation bitmap (bit = block number).
    Blocks,
    /// Inode-slot allocation bitmap (bit = inode number).
    Inodes,
    /// Orphan list (bit = inode number).
    Orphans,
}

/// Where one bit lives in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitPos {
    /// Image block holding the bit.
    pub block: u64,
    /// Byte offset within that block.
    pub byte: usize,
    /// Bit mask within that byte (LSB first).
    pub mask: u8,
}

/// The computed placement of every region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The geometry this layout was computed from.
    pub geometry: Geometry,
    /// Blocks of the block bitmap.
    pub block_bitmap: Range<u64>,
    /// Blocks of the inode bitmap.
    pub inode_bitmap: Range<u64>,
    /// Blocks of the orphan bitmap.
    pub orphan_bitmap: Range<u64>,
}

impl Layout {
    /// Computes the layout of an image with `geometry`.
    pub fn new(geometry: Geometry) -> Result<Layout> {
        let bs = geometry.block_size;
        if !bs.is_power_of_two() || !(512..=65536).contains(&bs) {
            return Err(Error::Config(format!("image block size {bs} is not a power of two in 512..=65536")));
        }
        if geometry.inode_count == 0 {
            return Err(Error::Config("inode count must be at least 1".into()));
        }
        if geometry.block_count.checked_mul(u64::from(bs)).is_none_or(|len| len > IMAGE_BYTES_MAX) {
            return Err(Error::Config(format!(
                "{} blocks of {bs} bytes exceed the largest image ({IMAGE_BYTES_MAX} bytes)",
                geometry.block_count
            )));
        }
        let bits_per_block = u64::from(bs) * 8;
        let bb = geometry.block_count.div_ceil(bits_per_block);
        let ib = geometry.inode_count.div_ceil(bits_per_block);
        let block_bitmap = 1..1 + bb;
        let inode_bitmap = block_bitmap.end..block_bitmap.end + ib;
        let orphan_bitmap = inode_bitmap.end..inode_bitmap.end + ib;
        if orphan_bitmap.end >= geometry.block_count {
            return Err(Error::Config(format!(
                "{} blocks leave no data region (metadata needs {})",
                geometry.block_count, orphan_bitmap.end
            )));
        }
        Ok(Layout { geometry, block_bitmap, inode_bitmap, orphan_bitmap })
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> usize {
        self.geometry.block_size as usize
    }

    /// Total blocks.
    pub fn block_count(&self) -> u64 {
        self.geometry.block_count
    }

    /// First data block.
    pub fn data_start(&self) -> u64 {
        self.orphan_bitmap.end
    }

    /// Image size in bytes.
    pub fn image_len(&self) -> u64 {
        self.geometry.block_count * u64::from(self.geometry.block_size)
    }

    /// Number of valid bit indexes in `region`.
    pub fn bit_count(&self, region: BitRegion) -> u64 {
        match region {
            BitRegion::Blocks => self.geometry.block_count,
            BitRegion::Inodes | BitRegion::Orphans => self.geometry.inode_count,
        }
    }

    /// Location of bit `index` of `region`, or `None` when the index is out of range.
    pub fn bit(&self, region: BitRegion, index: u64) -> Option<BitPos> {
        if index >= self.bit_count(region) {
            return None;
        }
        let start = match region {
            BitRegion::Blocks => self.block_bitmap.start,
            BitRegion::Inodes => self.inode_bitmap.start,
            BitRegion::Orphans => self.orphan_bitmap.start,
        };
        let bits_per_block = u64::from(self.geometry.block_size) * 8;
        let within = index % bits_per_block;
        Some(BitPos { block: start + index / bits_per_block, byte: (within / 8) as usize, mask: 1 << (within % 8) })
    }

    /// Encodes the superblock as a whole block.
    pub fn encode_superblock(&self) -> Vec<u8> {
        let g = &self.geometry;
        let mut b = vec![0u8; self.block_size()];
        b[0..8].copy_from_slice(&IMAGE_MAGIC);
        b[8..12].copy_from_slice(&IMAGE_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&g.block_size.to_le_bytes());
        b[16..24].copy_from_slice(&g.block_count.to_le_bytes());
        b[24..32].copy_from_slice(&g.inode_count.to_le_bytes());
        b[32..40].copy_from_slice(&g.image_id.to_le_bytes());
        for (i, v) in [
            self.block_bitmap.start,
            self.block_bitmap.end,
            self.inode_bitmap.start,
            self.inode_bitmap.end,
            self.orphan_bitmap.start,
            self.orphan_bitmap.end,
        ]
        .into_iter()
        .enumerate()
        {
            b[40 + 8 * i..48 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        let crc = crate::crc::crc32c(&b[..124]);
        b[124..128].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and validates a superblock read from `path` (`bytes` holds at least its first
    /// [`SUPERBLOCK_LEN`] bytes).
    pub fn decode_superblock(path: &Path, bytes: &[u8]) -> Result<Layout> {
        let bad = |offset: u64, reason: String| Error::BadImage { path: path.to_path_buf(), offset, reason };
        if bytes.len() < SUPERBLOCK_LEN {
            return Err(bad(bytes.len() as u64, "file shorter than the superblock".into()));
        }
        if bytes[0..8] != IMAGE_MAGIC {
            return Err(bad(0, "bad superblock magic".into()));
        }
        let stored = le_u32(bytes, 124);
        let computed = crate::crc::crc32c(&bytes[..124]);
        if stored != computed {
            return Err(bad(
                124,
                format!("superblock checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"),
            ));
        }
        let version = le_u32(bytes, 8);
        if version != IMAGE_VERSION {
            return Err(bad(8, format!("unsupported image version {version}")));
        }
        let geometry = Geometry {
            block_size: le_u32(bytes, 12),
            block_count: le_u64(bytes, 16),
            inode_count: le_u64(bytes, 24),
            image_id: le_u64(bytes, 32),
        };
        let layout = Layout::new(geometry).map_err(|e| bad(12, e.to_string()))?;
        if layout.encode_superblock()[..SUPERBLOCK_LEN] != bytes[..SUPERBLOCK_LEN] {
            return Err(bad(40, "superblock region table disagrees with its geometry".into()));
        }
        Ok(layout)
    }

    /// Opens `path` and reads its layout, checking the file length matches.
    pub fn read_from(path: &Path) -> Result<Layout> {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, "open image", e))?;
        let mut head = Vec::with_capacity(SUPERBLOCK_LEN);
        (&mut f)
            .take(SUPERBLOCK_LEN as u64)
            .read_to_end(&mut head)
            .map_err(|e| Error::io(path, "read superblock", e))?;
        let layout = Layout::decode_superblock(path, &head)?;
        let len = f.metadata().map_err(|e| Error::io(path, "stat image", e))?.len();
        if len != layout.image_len() {
            return Err(Error::BadImage {
                path: path.to_path_buf(),
                offset: len.min(layout.image_len()),
                reason: format!("image is {len} bytes, its superblock says {}", layout.image_len()),
            });
        }
        Ok(layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom() -> Geometry {
        Geometry { block_size: 4096, block_count: 100_000, inode_count: 40_000, image_id: 7 }
    }

    #[test]
    fn layout_places_regions_in_order() {
        let l = Layout::new(geom()).expect("layout");
        // 100,000 bits need 4 blocks of 32,768 bits; 40,000 need 2.
        assert_eq!(l.block_bitmap, 1..5);
        assert_eq!(l.inode_bitmap, 5..7);
        assert_eq!(l.orphan_bitmap, 7..9);
        assert_eq!(l.data_start(), 9);
        let p = l.bit(BitRegion::Orphans, 32769).expect("bit");
        assert_eq!(p, BitPos { block: 8, byte: 0, mask: 2 });
        assert_eq!(l.bit(BitRegion::Inodes, 40_000), None);
    }

    #[test]
    fn superblock_roundtrip_and_errors() {
        let l = Layout::new(geom()).expect("layout");
        let sb = l.encode_superblock();
        let p = Path::new("img");
        assert_eq!(Layout::decode_superblock(p, &sb).expect("decode"), l);
        let mut bad = sb.clone();
        bad[0] = b'X';
        assert!(matches!(Layout::decode_superblock(p, &bad), Err(Error::BadImage { offset: 0, .. })));
        let mut bad = sb.clone();
        bad[20] ^= 1;
        assert!(matches!(Layout::decode_superblock(p, &bad), Err(Error::BadImage { offset: 124, .. })));
        assert!(matches!(Layout::decode_superblock(p, &sb[..50]), Err(Error::BadImage { offset: 50, .. })));
    }

    #[test]
    fn too_small_images_are_refused() {
        let g = Geometry { block_count: 4, ..geom() };
        assert!(matches!(Layout::new(g), Err(Error::Config(_))));
    }
}
