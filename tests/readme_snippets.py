#!/usr/bin/env python3
"""The README's C++ snippets, one file each, so that the build checks that each compiles as written.

Usage: readme_snippets.py --count README.md          prints how many ```cpp blocks it has
       readme_snippets.py README.md OUT_1.cpp ...    writes block i to OUT_i.cpp (as many outputs as blocks)

A block is a whole file as far as the compiler is concerned: its own #include lines, `import dgram;`, its code.
A fence that looks like C++ but is not spelled ```cpp is an error, so no snippet escapes the check unseen.
"""
import re
import sys

CPP_BLOCK = re.compile(r"^```cpp\n(.*?)^```", flags=re.S | re.M)
CPP_NAMES = {"c++", "cxx", "cc", "cpp", "cplusplus"}


def blocks_of(readme: str) -> list[str]:
    with open(readme, encoding="utf-8") as file:
        text = file.read()
    odd = [line for line in text.splitlines()
           if line.startswith("```") and line[3:].strip().lower() in CPP_NAMES and line != "```cpp"]
    if odd:
        sys.exit(f"readme_snippets.py: {readme}: fences that look like C++ but are not ```cpp: {odd}")
    blocks = CPP_BLOCK.findall(text)
    if not blocks:
        sys.exit(f"readme_snippets.py: no ```cpp blocks in {readme}")
    return blocks


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--count":
        print(len(blocks_of(sys.argv[2])))
        return 0
    readme, outputs = sys.argv[1], sys.argv[2:]
    blocks = blocks_of(readme)
    if len(blocks) != len(outputs):
        sys.exit(f"readme_snippets.py: {readme} has {len(blocks)} C++ blocks, the build expects {len(outputs)}: "
                 "reconfigure (meson setup --reconfigure)")
    for number, (block, output) in enumerate(zip(blocks, outputs), 1):
        with open(output, "w", encoding="utf-8") as file:
            file.write(f"// README.md, C++ snippet {number} (written by tests/readme_snippets.py: edit the README)\n")
            file.write(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
