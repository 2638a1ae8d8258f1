//! What apply needs to know about the director binary from its ELF headers
//! (pure, via the `object` crate): whether it is statically linked (no
//! program interpreter, so it needs no glibc on the director) and whether it
//! carries debug sections (a debug build: tens of MB to upload).

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::{Endianness, FileKind};

/// The facts apply reads from an ELF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfFacts {
    /// A `PT_INTERP` program header: dynamically linked (ld.so, libc).
    pub interpreter: bool,
    /// Any `.debug_*` section (DWARF).
    pub debug_sections: bool,
}

/// `bytes` read as ELF; `None` when they are not an ELF file (or a broken
/// one: nothing is assumed then).
pub fn inspect(bytes: &[u8]) -> Option<ElfFacts> {
    match FileKind::parse(bytes).ok()? {
        FileKind::Elf64 => facts::<elf::FileHeader64<Endianness>>(bytes),
        FileKind::Elf32 => facts::<elf::FileHeader32<Endianness>>(bytes),
        _ => None,
    }
}

fn facts<H: FileHeader<Endian = Endianness>>(bytes: &[u8]) -> Option<ElfFacts> {
    let header = H::parse(bytes).ok()?;
    let endian = header.endian().ok()?;
    let interpreter = header
        .program_headers(endian, bytes)
        .ok()?
        .iter()
        .any(|p| p.p_type(endian) == elf::PT_INTERP);
    let sections = header.sections(endian, bytes).ok()?;
    let debug_sections = sections.iter().any(|s| {
        sections
            .section_name(endian, s)
            .is_ok_and(|n| n.starts_with(b".debug_"))
            && s.sh_size(endian).into() > 0
    });
    Some(ElfFacts {
        interpreter,
        debug_sections,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal little-endian ELF64 file: a header, `interp` adds a PT_INTERP
    /// program header next to a PT_LOAD, and sections named `names` (plus the
    /// null section and .shstrtab), each 4 bytes long.
    pub(crate) fn elf64(interp: bool, names: &[&str]) -> Vec<u8> {
        let phnum: u16 = if interp { 2 } else { 1 };
        let mut strtab = vec![0u8];
        let mut name_off = Vec::new();
        for n in names.iter().chain([&".shstrtab"]) {
            name_off.push(strtab.len() as u32);
            strtab.extend_from_slice(n.as_bytes());
            strtab.push(0);
        }
        let phoff = 64u64;
        let data_off = phoff + 56 * u64::from(phnum);
        let strtab_off = data_off + 4 * names.len() as u64;
        let shoff = (strtab_off + strtab.len() as u64).next_multiple_of(8);
        let shnum = names.len() as u16 + 2;
        let mut b = Vec::new();
        b.extend_from_slice(b"\x7fELF");
        b.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little endian, version 1, SysV
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        b.extend_from_slice(&62u16.to_le_bytes()); // x86_64
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&0x401000u64.to_le_bytes()); // entry
        b.extend_from_slice(&phoff.to_le_bytes());
        b.extend_from_slice(&shoff.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes()); // flags
        for v in [64u16, 56, phnum, 64, shnum, shnum - 1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let ph = |b: &mut Vec<u8>, p_type: u32| {
            b.extend_from_slice(&p_type.to_le_bytes());
            b.extend_from_slice(&4u32.to_le_bytes()); // flags
            for _ in 0..6 {
                b.extend_from_slice(&0u64.to_le_bytes());
            }
        };
        ph(&mut b, elf::PT_LOAD);
        if interp {
            ph(&mut b, elf::PT_INTERP);
        }
        for _ in names {
            b.extend_from_slice(&[1, 2, 3, 4]);
        }
        b.extend_from_slice(&strtab);
        b.resize(shoff as usize, 0);
        let sh = |b: &mut Vec<u8>, name: u32, kind: u32, off: u64, size: u64| {
            b.extend_from_slice(&name.to_le_bytes());
            b.extend_from_slice(&kind.to_le_bytes());
            b.extend_from_slice(&0u64.to_le_bytes()); // flags
            b.extend_from_slice(&0u64.to_le_bytes()); // addr
            b.extend_from_slice(&off.to_le_bytes());
            b.extend_from_slice(&size.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes()); // link
            b.extend_from_slice(&0u32.to_le_bytes()); // info
            b.extend_from_slice(&1u64.to_le_bytes()); // align
            b.extend_from_slice(&0u64.to_le_bytes()); // entsize
        };
        sh(&mut b, 0, elf::SHT_NULL, 0, 0);
        for (i, _) in names.iter().enumerate() {
            sh(
                &mut b,
                name_off[i],
                elf::SHT_PROGBITS,
                data_off + 4 * i as u64,
                4,
            );
        }
        sh(
            &mut b,
            name_off[names.len()],
            elf::SHT_STRTAB,
            strtab_off,
            strtab.len() as u64,
        );
        b
    }

    #[test]
    fn static_stripped_binary_has_neither_interpreter_nor_debug_sections() {
        let f = inspect(&elf64(false, &[".text", ".rodata"])).expect("elf");
        assert_eq!(
            f,
            ElfFacts {
                interpreter: false,
                debug_sections: false
            }
        );
    }

    #[test]
    fn dynamic_debug_binary_has_both() {
        let f = inspect(&elf64(true, &[".text", ".debug_info", ".debug_line"])).expect("elf");
        assert_eq!(
            f,
            ElfFacts {
                interpreter: true,
                debug_sections: true
            }
        );
        // a dynamic, stripped one
        let f = inspect(&elf64(true, &[".text"])).expect("elf");
        assert!(f.interpreter && !f.debug_sections);
    }

    #[test]
    fn the_running_test_binary_is_dynamic_with_debug_sections() {
        // cargo test builds with the dev profile (line tables) against glibc
        let exe = std::env::current_exe().expect("current exe");
        let f = inspect(&std::fs::read(exe).expect("read")).expect("elf");
        assert!(f.interpreter, "{f:?}");
        assert!(f.debug_sections, "{f:?}");
    }

    #[test]
    fn not_elf_or_broken_elf_is_none_and_never_panics() {
        assert_eq!(inspect(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(inspect(b""), None);
        let good = elf64(true, &[".debug_info"]);
        for cut in 0..good.len() {
            // any prefix: None or facts, no panic
            let _ = inspect(&good[..cut]);
        }
        assert_eq!(inspect(&good[..40]), None);
    }
}
