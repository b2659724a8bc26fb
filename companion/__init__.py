"""The course's companion package: reference implementations that the chapters import.

Each module belongs to a chapter of the book and says which in its docstring. The chapters
import from here; nothing in the package is generated from a notebook.
"""

__version__ = "0.1.0"

#: Where the course lives; the install cell of every notebook points here.
REPOSITORY = "https://github.com/deep-vision-course/deep-vision"
