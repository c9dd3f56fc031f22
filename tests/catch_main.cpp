// Catch2's main, alone in its own file: it is the slowest file of the suite to compile, and it never changes.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
