# embed.cmake: turn a file into a C array (the dashboard page into the
# gateway's binary, so the page ships with it and needs no path).
#   cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed.cmake
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
file(WRITE "${OUT}" "/* generated from ${IN} by gateway/embed.cmake */\n#include <stddef.h>\n"
     "const char ${NAME}[] = {${body} 0};\nconst size_t ${NAME}_len = ${bytes};\n")
