//! G.711 decoding tables (ITU-T G.711, as in the reference `g711.c`): one lookup per sample turns
//! an 8-bit μ-law or A-law code into the 16-bit linear value it stands for.

/// G.711 μ-law code → 16-bit linear (ITU-T G.711; the reference decoder's arithmetic).
pub(super) static MULAW: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        let u = !(i as u8);
        let exponent = (u >> 4) & 0x07;
        let magnitude = ((((u & 0x0f) as i32) << 3) + 0x84) << exponent;
        table[i] = if u & 0x80 != 0 {
            (0x84 - magnitude) as i16
        } else {
            (magnitude - 0x84) as i16
        };
        i += 1;
    }
    table
};

/// G.711 A-law code → 16-bit linear.
pub(super) static ALAW: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        let a = (i as u8) ^ 0x55;
        let segment = (a & 0x70) >> 4;
        let mut magnitude = ((a & 0x0f) as i32) << 4;
        magnitude = match segment {
            0 => magnitude + 8,
            1 => magnitude + 0x108,
            _ => (magnitude + 0x108) << (segment - 1),
        };
        table[i] = if a & 0x80 != 0 {
            magnitude as i16
        } else {
            -magnitude as i16
        };
        i += 1;
    }
    table
};
