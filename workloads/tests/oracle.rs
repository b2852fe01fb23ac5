//! The oracle on hand-built histories.

use recovery::image::{BitRegion, Geometry, Layout};
use workloads::oracle::{Event, Oracle};

const BS: usize = 512;

fn layout() -> Layout {
    Layout::new(Geometry { block_size: BS as u32, block_count: 64, inode_count: 100, image_id: 1 }).expect("layout")
}

fn base(l: &Layout) -> Vec<u8> {
    vec![0xaa; l.image_len() as usize]
}

fn write(block: u64, offset: u32, byte: u8, len: usize) -> Event {
    Event::Write { block, offset, bytes: vec![byte; len] }
}

fn at(img: &[u8], block: u64, offset: usize) -> u8 {
    img[block as usize * BS + offset]
}

fn bit(l: &Layout, img: &[u8], region: BitRegion, index: u64) -> bool {
    let p = l.bit(region, index).expect("bit");
    img[p.block as usize * BS + p.byte] & p.mask != 0
}

#[test]
fn committed_changes_apply_and_lost_commits_do_not() {
    let l = layout();
    let d = l.data_start();
    let mut o = Oracle::new(l.clone(), base(&l)).expect("oracle");
    o.commit(100, vec![write(d, 0, 1, 10)]).expect("commit");
    // Not durable yet: the durable state does not show it.
    assert_eq!(at(o.image(), d, 0), 0xaa);
    o.make_durable(100);
    assert_eq!(at(o.image(), d, 0), 1);
    // A commit past the crash position never counts; an uncommitted transaction never
    // reaches the oracle at all.
    o.commit(300, vec![write(d + 1, 0, 2, 10)]).expect("commit");
    let r = o.finish(299);
    assert_eq!(at(&r.image, d, 0), 1);
    assert_eq!(at(&r.image, d + 1, 0), 0xaa);
    assert_eq!(r.committed_txns, 1);
    assert_eq!(r.committed_blocks, vec![d]);
}

#[test]
fn commit_order_decides_overlapping_ranges() {
    let l = layout();
    let d = l.data_start();
    let mut o = Oracle::new(l.clone(), base(&l)).expect("oracle");
    o.commit(10, vec![write(d, 0, 1, 100)]).expect("commit");
    o.commit(20, vec![write(d, 50, 2, 100)]).expect("commit");
    o.commit(30, vec![write(d, 120, 3, 10), write(d, 125, 4, 2)]).expect("commit");
    let r = o.finish(30);
    assert_eq!(at(&r.image, d, 49), 1);
    assert_eq!(at(&r.image, d, 50), 2);
    assert_eq!(at(&r.image, d, 121), 3);
    assert_eq!(at(&r.image, d, 125), 4, "later events of one transaction win too");
    assert_eq!(at(&r.image, d, 150), 0xaa);
    assert_eq!(r.max_txns_per_block, 3);
    // Commits must arrive in commit order.
    let mut o = Oracle::new(l.clone(), base(&l)).expect("oracle");
    o.commit(10, vec![]).expect("commit");
    assert!(o.commit(10, vec![]).is_err());
}

#[test]
fn unlogged_writes_keep_their_place_in_history() {
    let l = layout();
    let d = l.data_start();
    let fresh = vec![7u8; BS];
    // After a durable revoking commit: the unlogged write survives.
    let mut o = Oracle::new(l.clone(), base(&l)).expect("oracle");
    o.commit(10, vec![write(d, 0, 1, BS), Event::Bit { region: BitRegion::Blocks, index: d, set: false }])
        .expect("commit");
    o.make_durable(10);
    o.unlogged_write(d, fresh.clone()).expect("unlogged");
    assert_eq!(o.pending(), 0, "applied at once");
    let r = o.finish(10);
    assert_eq!(&r.image[d as usize * BS..(d as usize + 1) * BS], &fresh[..]);
    // Behind a queued commit of the same block it waits: the commit comes first if it
    // survives, and the unlogged write survives either way.
    for crash_pos in [20, 19] {
        let mut o = Oracle::new(l.clone(), base(&l)).expect("oracle");
        o.commit(20, vec![write(d, 0, 1, BS)]).expect("commit");
        o.unlogged_write(d, fresh.clone()).expect("unlogged");
        assert_eq!(o.pending(), 2);
        let r = o.finish(crash_pos);
        assert_eq!(at(&r.image, d, 0), 7, "crash at {crash_pos}");
    }
    assert!(Oracle::new(l.clone(), base(&l)).expect("oracle").unlogged_write(0, fresh).is_err());
}

#[test]
fn orphan_cleanup_frees_inodes() {
    let l = layout();
    let mut img = base(&l);
    // Clear all bitmaps, then: inode 3 allocated and orphaned, inode 4 allocated only.
    for b in 1..l.data_start() {
        img[b as usize * BS..(b as usize + 1) * BS].fill(0);
    }
    let mut o = Oracle::new(l.clone(), img).expect("oracle");
    o.commit(
        5,
        vec![
            Event::Bit { region: BitRegion::Inodes, index: 3, set: true },
            Event::Bit { region: BitRegion::Orphans, index: 3, set: true },
            Event::Bit { region: BitRegion::Inodes, index: 4, set: true },
            Event::Bit { region: BitRegion::Inodes, index: 5, set: true },
            Event::Bit { region: BitRegion::Orphans, index: 5, set: true },
        ],
    )
    .expect("commit");
    // Inode 5 leaves the orphan list in a later committed transaction; inode 6 is orphaned by
    // one whose commit is lost.
    o.commit(6, vec![Event::Bit { region: BitRegion::Orphans, index: 5, set: false }]).expect("commit");
    o.commit(
        8,
        vec![
            Event::Bit { region: BitRegion::Inodes, index: 6, set: true },
            Event::Bit { region: BitRegion::Orphans, index: 6, set: true },
        ],
    )
    .expect("commit");
    let r = o.finish(7);
    assert_eq!(r.orphans_freed, 1);
    assert!(!bit(&l, &r.image, BitRegion::Inodes, 3));
    assert!(!bit(&l, &r.image, BitRegion::Orphans, 3));
    assert!(bit(&l, &r.image, BitRegion::Inodes, 4));
    assert!(bit(&l, &r.image, BitRegion::Inodes, 5));
    assert!(!bit(&l, &r.image, BitRegion::Inodes, 6));
}

#[test]
fn impossible_events_are_refused() {
    let l = layout();
    let mut o = Oracle::new(l.clone(), base(&l)).expect("oracle");
    assert!(o.commit(1, vec![write(0, 0, 1, 1)]).is_err(), "superblock is not a data block");
    assert!(o.commit(2, vec![write(l.data_start(), BS as u32 - 1, 1, 2)]).is_err(), "past the block end");
    assert!(o.commit(3, vec![Event::Bit { region: BitRegion::Inodes, index: 100, set: true }]).is_err());
    assert!(Oracle::new(l.clone(), vec![0; 10]).is_err());
}

fn copy(src: u64, src_offset: u32, dst: u64, dst_offset: u32, len: u32) -> Event {
    Event::Copy { src, src_offset, dst, dst_offset, len }
}

#[test]
fn a_copy_reads_its_source_at_its_place_in_history() {
    let l = layout();
    let d = l.data_start();
    let mut o = Oracle::new(l.clone(), base(&l)).expect("oracle");
    // T1 writes the source; T2 writes more of it, copies, then writes the source again: the
    // copy sees T1's and T2's earlier bytes, not the later ones.
    o.commit(10, vec![write(d, 0, 1, 8)]).expect("commit");
    o.commit(20, vec![write(d, 8, 2, 8), copy(d, 4, d + 1, 100, 16), write(d, 0, 3, 32)]).expect("commit");
    // A later transaction writes the source: the copied bytes stay.
    o.commit(30, vec![write(d, 0, 4, BS)]).expect("commit");
    o.make_durable(30);
    let r = o.finish(30);
    let dst: Vec<u8> = (100..116).map(|i| at(&r.image, d + 1, i)).collect();
    assert_eq!(dst, [vec![1u8; 4], vec![2u8; 8], vec![0xaa; 4]].concat());
    assert_eq!(at(&r.image, d + 1, 99), 0xaa);
    assert_eq!(at(&r.image, d + 1, 116), 0xaa);
    assert_eq!(at(&r.image, d, 0), 4);
    assert_eq!((r.copies, r.copies_reading_recent_writes), (1, 1));
    assert_eq!(r.committed_blocks, vec![d, d + 1]);
}

#[test]
fn copies_count_only_when_committed_and_see_unlogged_writes_in_order() {
    let l = layout();
    let d = l.data_start();
    let mut o = Oracle::new(l.clone(), base(&l)).expect("oracle");
    // A copy of a source nobody logged a change of: it reads the base bytes.
    o.commit(10, vec![copy(d + 2, 0, d + 3, 0, 4)]).expect("commit");
    // An unlogged write of the source queued behind a commit that copies from it waits, so the
    // copy reads the earlier content.
    o.commit(20, vec![write(d + 2, 0, 5, 4), copy(d + 2, 0, d + 4, 0, 4)]).expect("commit");
    o.unlogged_write(d + 2, vec![9; BS]).expect("unlogged");
    assert_eq!(o.pending(), 3, "behind the queued copy of its block");
    // A copy whose commit is lost at the crash never counts.
    o.commit(40, vec![copy(d + 2, 0, d + 5, 0, 4)]).expect("commit");
    let r = o.finish(39);
    assert_eq!(at(&r.image, d + 3, 0), 0xaa);
    assert_eq!(at(&r.image, d + 4, 3), 5);
    assert_eq!(at(&r.image, d + 2, 0), 9);
    assert_eq!(at(&r.image, d + 5, 0), 0xaa);
    assert_eq!((r.copies, r.copies_reading_recent_writes), (2, 1));
}

#[test]
fn impossible_copies_are_refused() {
    let l = layout();
    let d = l.data_start();
    let mut o = Oracle::new(l.clone(), base(&l)).expect("oracle");
    assert!(o.commit(1, vec![copy(d, 0, d, 10, 4)]).is_err(), "within one block");
    assert!(o.commit(2, vec![copy(0, 0, d, 0, 4)]).is_err(), "superblock source");
    assert!(o.commit(3, vec![copy(d, 0, 64, 0, 4)]).is_err(), "past the image");
    assert!(o.commit(4, vec![copy(d, BS as u32 - 2, d + 1, 0, 4)]).is_err(), "source overrun");
    assert!(o.commit(5, vec![copy(d, 0, d + 1, BS as u32 - 2, 4)]).is_err(), "destination overrun");
    assert!(o.commit(6, vec![copy(d, 0, d + 1, 0, 0)]).is_err(), "empty");
    o.commit(7, vec![copy(d, 0, d + 1, 0, BS as u32)]).expect("a whole block is fine");
}
