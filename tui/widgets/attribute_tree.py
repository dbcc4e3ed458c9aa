"""The attributes of a DICOM data set as a tree: one line per element (tag, VR, keyword,
value), sequences expandable down to their items' elements."""

from __future__ import annotations

from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

# Values longer than this are cut in the tree (saving keeps them whole).
MAX_VALUE = 96
KEYWORD_WIDTH = 26
_BINARY = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})


def value_text(elem: DataElement) -> str:
    """An element's value as one short line: text and numbers as they are (several values
    joined by backslashes), binary data by its size."""
    if elem.VR in _BINARY:
        size = len(elem.value) if isinstance(elem.value, bytes | bytearray) else 0
        return f"<{size:,} bytes>"
    value = elem.value
    if value is None or value == "":
        return ""
    if isinstance(value, MultiValue | list | tuple):
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def element_label(elem: DataElement) -> Text:
    """`(0010,0010) PN PatientName  Doe^John`, the tag and VR dimmed."""
    label = Text()
    label.append(f"({elem.tag.group:04X},{elem.tag.element:04X}) ", style="dim")
    label.append(f"{elem.VR:<2} ", style="dim")
    # Keywords padded to one width, so that most values line up.
    label.append(f"{elem.keyword or '(private)':<{KEYWORD_WIDTH}}", style="bold")
    if elem.VR == "SQ":
        items = len(elem.value)
        label.append(f" {items} item{'' if items == 1 else 's'}", style="italic")
    else:
        label.append(" " + value_text(elem))
    return label


class AttributeTree(Tree[DataElement | None]):
    """A data set's elements in tag order; a sequence opens to its items, an item to its
    elements (enter or space toggles a node)."""

    def __init__(self, ds: Dataset, *, label: str = "attributes", id: str | None = None) -> None:
        super().__init__(label, id=id)
        self.show_root = False
        self.guide_depth = 2
        self.dataset = ds

    def on_mount(self) -> None:
        meta = getattr(self.dataset, "file_meta", None)
        if meta:
            self._add(self.root.add(Text("File Meta Information", style="italic")), meta)
        self._add(self.root, self.dataset)
        self.root.expand()

    def _add(self, node: TreeNode[DataElement | None], ds: Dataset) -> None:
        for elem in ds:
            if elem.VR == "SQ":
                branch = node.add(element_label(elem), data=elem)
                for number, item in enumerate(elem.value, start=1):
                    item_node = branch.add(Text(f"Item {number}", style="italic"), data=None)
                    self._add(item_node, item)
            else:
                node.add_leaf(element_label(elem), data=elem)
