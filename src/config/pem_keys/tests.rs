//! Unit tests of the PEM helpers.

use super::modulus_bits;

#[test]
fn modulus_bits_count_from_the_first_set_bit() {
    assert_eq!(modulus_bits(&[]), 0);
    assert_eq!(modulus_bits(&[0, 0]), 0);
    assert_eq!(modulus_bits(&[0, 1]), 1);
    assert_eq!(modulus_bits(&[0x80; 256]), 2048);
    assert_eq!(modulus_bits(&[0, 0x7f, 0]), 15);
}
