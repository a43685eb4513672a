fn main() {
    println!("dts");
}
