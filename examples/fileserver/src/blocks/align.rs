//! The `O_DIRECT` alignment to expect of the file system under the root, known before any
//! file is opened (statx reports it per regular file, and only once one is open): the
//! block device's logical block size (offsets and lengths) and DMA alignment (memory), as
//! ext4 and XFS derive theirs. Without a block device (tmpfs, overlay, network file
//! systems) nothing is read from sysfs and the reader's own assumption applies.

use umem::{BlockReader, DioAlign};

use crate::root::Root;

/// What the block device holding `root` asks of direct reads, or the reader's assumption
/// when there is no block device to ask.
pub fn of_root(root: &Root) -> DioAlign {
    root.device().and_then(|(major, minor)| of_device(major, minor)).unwrap_or(DioAlign::ASSUMED)
}

/// The alignment sysfs gives for block device `major:minor` (a partition's queue is its
/// disk's).
fn of_device(major: u32, minor: u32) -> Option<DioAlign> {
    let dev = format!("/sys/dev/block/{major}:{minor}");
    let queue = [format!("{dev}/queue"), format!("{dev}/../queue")]
        .into_iter()
        .find(|q| std::path::Path::new(q).join("logical_block_size").exists())?;
    let read = |name: &str| std::fs::read_to_string(format!("{queue}/{name}")).ok()?.trim().parse::<u32>().ok();
    let offset = read("logical_block_size").filter(|v| v.is_power_of_two())?;
    let mem = read("dma_alignment").map_or(offset, |v| v.saturating_add(1)).max(1);
    mem.is_power_of_two().then_some(DioAlign { mem, offset, reported: true })
}

/// Fails when a payload block of `reader`'s pool cannot hold one read of a file system that
/// wants `align` for `O_DIRECT` (a `--block-kib` below the alignment): a startup error,
/// where it would otherwise be a 500 on every request.
pub fn check(reader: &BlockReader, align: DioAlign) -> Result<(), String> {
    if reader.block_len(align) > 0 {
        return Ok(());
    }
    let need = (align.offset.max(align.mem) * 2).div_ceil(4096) * 4;
    Err(format!(
        "a payload block of {} KiB cannot hold one O_DIRECT read of the file system under --root, which wants \
         {}-byte aligned offsets and {}-byte aligned memory: use --block-kib {need} or more, or --no-direct-io",
        reader.pool().block_size() / 1024,
        align.offset,
        align.mem
    ))
}
