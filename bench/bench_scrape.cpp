#include <cstdio>
int main() { std::puts("TODO"); }
