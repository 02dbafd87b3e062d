"""The group cell and the submission file name (grader.submission.naming, contract §2 and §4)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.errors import GraderError
from grader.submission.naming import (
    GroupCellError,
    Member,
    check_naming,
    name_matches,
    parse_filename,
    read_group,
    suggest_filename,
)

ADA = Member("Ada Lovelace", "2571234", "ada@uni.example")
ALAN = Member("Alan Mathison Turing", "2579876", "alan@uni.example")
EMILIE = Member("Émilie du Châtelet", "2570001", "emilie@uni.example")
JOERG = Member("Jörg Müller", "2570002", "joerg@uni.example")
HANS = Member("Hans Groß", "2570003", "hans@uni.example")

# --------------------------------------------------------------------------- group cell

GOOD_CELL = '''# Fill in every member of your group.
GROUP = [
    {"name": "Ada Lovelace", "student_id": "2571234", "email": "ada@uni.example"},
    {"name": "Alan Mathison Turing", "student_id": 2579876, "email": "alan@uni.example"},  # id as int
]
'''


def test_read_group_good_cell() -> None:
    assert read_group(GOOD_CELL) == (ADA, ALAN)


def test_read_group_trims_and_accepts_tuple() -> None:
    cell = 'GROUP = ({"name": " Ada Lovelace ", "student_id": "2571234 ", "email": "ada@uni.example"},)'
    assert read_group(cell) == (ADA,)


def test_group_cell_error_is_grader_error() -> None:
    assert issubclass(GroupCellError, GraderError)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("", "empty"),
        ("# only a comment\n", "empty"),
        ("import os\nGROUP = []", "line 1"),
        ("GROUP = []\nimport os", "an import"),
        ("GROUP = []\nprint('hi')", "a function call"),
        ("GROUP = open('/etc/passwd').read()", "a function call"),
        ("GROUP = __import__('os').system('touch /tmp/pwned')", "a function call"),
        ("GROUP = [{'name': input(), 'student_id': '1', 'email': 'a@b.c'}]", "a function call"),
        ("GROUP = [ADA]", "a variable name"),
        ("GROUP = [{'name': 'A' * 3, 'student_id': '1', 'email': 'a@b.c'}]", "a calculation"),
        ("GROUP = [{'name': f'{x}', 'student_id': '1', 'email': 'a@b.c'}]", "f-string"),
        ("group = []", "may hold only"),
        ("GROUP = OTHER = []", "may hold only"),
        ("GROUP = []\nGROUP = []", "a second assignment"),
        ("def f():\n    pass\nGROUP = []", "a function definition"),
        ("GROUP = {'name': 'Ada'}", "list of dictionaries"),
        ("GROUP = 'Ada Lovelace'", "list of dictionaries"),
        ("GROUP = ['Ada Lovelace']", "member 1"),
        ("GROUP = [{'name': 'Ada Lovelace', 'student_id': '1'}]", "'email'"),
        ("GROUP = [{'name': 'Ada', 'email': 'a@b.c'}]", "'student_id'"),
        ("GROUP = [{'name': 42, 'student_id': '1', 'email': 'a@b.c'}]", "'name' must be text"),
        ("GROUP = [{'name': 'Ada', 'student_id': 1.5, 'email': 'a@b.c'}]", "'student_id' must be text"),
        ("GROUP = [{'name': 'Ada', 'student_id': True, 'email': 'a@b.c'}]", "'student_id' must be text"),
        ("GROUP = [{'name': '', 'student_id': '1', 'email': 'a@b.c'}]", "empty 'name'"),
        ("GROUP = [\n  {'name': 'Ada', 'student_id': '1' 'email': 'a@b.c'}\n]", "line 2"),
        ("GROUP = [{'name': 'Ada'", "not valid Python"),
        ("%pip install os\nGROUP = []", "line 1"),
        ("GROUP = " + "[" * 200 + "]" * 200, "GROUP"),
    ],
)
def test_read_group_rejects(source: str, fragment: str, tmp_path: object) -> None:
    with pytest.raises(GroupCellError) as info:
        read_group(source)
    assert fragment in str(info.value)


def test_hostile_cell_is_not_executed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "pwned"
    cells = [
        f"import os; os.system('touch {marker}')\nGROUP = []",
        f"GROUP = __import__('os').system('touch {marker}')",
        f"GROUP = [open('{marker}', 'w')]",
        f"GROUP = [{{'name': open('{marker}', 'w').name, 'student_id': '1', 'email': 'a@b.c'}}]",
    ]
    for cell in cells:
        with pytest.raises(GroupCellError):
            read_group(cell)
    assert not marker.exists()


# --------------------------------------------------------------------------- parse_filename


@pytest.mark.parametrize(
    ("filename", "pairs"),
    [
        ("Lovelace_2571234_Turing_2579876.zip",
         (("Lovelace", "2571234"), ("Turing", "2579876"))),
        ("Lovelace_2571234_Turing_2579876_Hopper_2570000.zip",
         (("Lovelace", "2571234"), ("Turing", "2579876"), ("Hopper", "2570000"))),
        ("Lovelace_2571234_Turing_2579876.ipynb",
         (("Lovelace", "2571234"), ("Turing", "2579876"))),
        ("Lovelace_2571234_Turing_2579876.ZIP",
         (("Lovelace", "2571234"), ("Turing", "2579876"))),
        ("uploads/2024/Lovelace_2571234_Turing_2579876.zip",
         (("Lovelace", "2571234"), ("Turing", "2579876"))),
        ("Müller_2570002_Jean-Luc_2570004.zip", (("Müller", "2570002"), ("Jean-Luc", "2570004"))),
        ("Lovelace_2571234.zip", (("Lovelace", "2571234"),)),  # a size problem, not a pattern one
        ("A_1_B_2_C_3_D_4.zip", (("A", "1"), ("B", "2"), ("C", "3"), ("D", "4"))),
    ],
)
def test_parse_filename_ok(filename: str, pairs: tuple[tuple[str, str], ...]) -> None:
    parsed = parse_filename(filename)
    assert parsed.ok and parsed.problem == ""
    assert parsed.pairs == pairs
    assert parsed.count == len(pairs)


@pytest.mark.parametrize(
    ("filename", "fragment"),
    [
        ("Lovelace_Turing.zip", "'Lovelace_Turing.zip' has no student ids"),
        ("Lovelace_2571234_Turing.zip", "pairs"),
        ("Lovelace_2571234_Turing_25798x6.zip", "'25798x6' where a student id belongs"),
        ("2571234_Lovelace_2579876_Turing.zip", "name first"),
        ("Lovelace__2571234_Turing_2579876.zip", "empty part"),
        ("_Lovelace_2571234_Turing_2579876.zip", "empty part"),
        ("Lovelace_2571234_Turing_2579876.pdf", ".zip or .ipynb"),
        ("Lovelace_2571234_Turing_2579876", ".zip or .ipynb"),
        ("Lovelace_2571234_Turing_2579876.tar.gz", ".zip or .ipynb"),
        ("Lovelace_2571234_Turing_2579876 (1).zip", "space"),
        ("Ada Lovelace_2571234_Turing_2579876.zip", "space"),
        ("2571234_2579876.zip", "no names"),
        (".zip", "no name"),
        ("Lovelace_２５７_Turing_2579876.zip", "student id"),  # full-width digits
    ],
)
def test_parse_filename_bad(filename: str, fragment: str) -> None:
    parsed = parse_filename(filename)
    assert not parsed.ok
    assert parsed.problem.startswith("the file name must look like Name1_id1_Name2_id2.zip")
    assert fragment in parsed.problem


# --------------------------------------------------------------------------- name_matches


@pytest.mark.parametrize(
    ("part", "full_name", "expected"),
    [
        ("Turing", "Alan Mathison Turing", True),
        ("Alan", "Alan Mathison Turing", True),
        ("AlanMathisonTuring", "Alan Mathison Turing", True),
        ("MathisonTuring", "Alan Mathison Turing", True),
        ("turing", "Alan Mathison Turing", True),
        ("TURING", "Alan Mathison Turing", True),
        ("AlanTuring", "Alan Mathison Turing", False),  # not consecutive
        ("TuringAlan", "Alan Mathison Turing", False),
        ("Turin", "Alan Mathison Turing", False),
        ("Turingg", "Alan Mathison Turing", False),
        ("duChatelet", "Émilie du Châtelet", True),
        ("Chatelet", "Émilie du Châtelet", True),
        ("Châtelet", "Émilie du Châtelet", True),
        ("Emilie", "Émilie du Châtelet", True),
        ("EmilieduChatelet", "Émilie du Châtelet", True),
        ("Muller", "Jörg Müller", True),
        ("Mueller", "Jörg Müller", True),
        ("Müller", "Jörg Müller", True),
        ("Joerg", "Jörg Müller", True),
        ("JorgMueller", "Jörg Müller", True),  # choices mixed per letter
        ("Mueler", "Jörg Müller", False),
        ("Gross", "Hans Groß", True),
        ("Groß", "Hans Groß", True),
        ("GROSS", "Hans Groß", True),
        ("Grosz", "Hans Groß", False),
        ("Moeller", "Søren Møller", True),
        ("Moller", "Søren Møller", True),
        ("Aangstroem", "Anders Ångström", True),
        ("Angstrom", "Anders Ångström", True),
        ("Lukasiewicz", "Jan Łukasiewicz", True),
        ("Caesar", "Julius Cæsar", True),
        ("Csar", "Julius Cæsar", False),
        ("JeanLuc", "Jean-Luc Picard", True),
        ("Jean-Luc", "Jean-Luc Picard", True),
        ("Luc", "Jean-Luc Picard", True),
        ("JeanLucPicard", "Jean-Luc Picard", True),
        ("ONeil", "Shaquille O'Neil", True),
        ("O'Neil", "Shaquille O'Neil", True),
        ("Mueller", "Jo\u0308rg Mu\u0308ller", True),  # the cell in NFD
        ("Mu\u0308ller", "Jörg Müller", True),  # the file name in NFD (macOS)
        ("", "Jörg Müller", False),
    ],
)
def test_name_matches(part: str, full_name: str, expected: bool) -> None:
    assert name_matches(part, full_name) is expected


def test_name_matches_many_diacritics_is_fast() -> None:
    name = "Ö" * 200 + " Ü" * 30
    assert name_matches("oe" * 200, name)
    assert not name_matches("oe" * 199 + "x", name)


# --------------------------------------------------------------------------- check_naming


def codes(findings: tuple) -> list[str]:  # type: ignore[type-arg]
    return [f.code for f in findings]


@pytest.mark.parametrize(
    ("filename", "members"),
    [
        ("Lovelace_2571234_Turing_2579876.zip", (ADA, ALAN)),
        ("Turing_2579876_Lovelace_2571234.zip", (ADA, ALAN)),  # any order
        ("Ada_2571234_AlanMathisonTuring_2579876.ipynb", (ADA, ALAN)),
        ("duChatelet_2570001_Mueller_2570002_Gross_2570003.zip", (EMILIE, JOERG, HANS)),
        ("Chatelet_2570001_Muller_2570002.zip", (EMILIE, JOERG)),
    ],
)
def test_check_naming_clean(filename: str, members: tuple[Member, ...]) -> None:
    assert check_naming(filename, members) == ()


def test_wrong_id() -> None:
    findings = check_naming("Lovelace_2571234_Turing_2579999.zip", (ADA, ALAN))
    assert codes(findings) == ["naming.mismatch"]
    msg = findings[0].message
    assert "no member of the group cell has student id 2579999" in msg
    assert "Alan Mathison Turing (2579876) is in the group cell but not in the file name" in msg


def test_id_matches_but_name_does_not() -> None:
    findings = check_naming("Lovelace_2571234_Hopper_2579876.zip", (ADA, ALAN))
    assert codes(findings) == ["naming.mismatch"]
    assert "id 2579876 belongs to Alan Mathison Turing, but 'Hopper'" in findings[0].message


def test_missing_member() -> None:
    findings = check_naming("Lovelace_2571234_Turing_2579876.zip", (ADA, ALAN, EMILIE))
    assert codes(findings) == ["naming.mismatch"]
    assert "Émilie du Châtelet (2570001) is in the group cell but not in the file name" in (
        findings[0].message)


def test_four_members() -> None:
    four = (ADA, ALAN, EMILIE, JOERG)
    name = "Lovelace_2571234_Turing_2579876_Chatelet_2570001_Muller_2570002.zip"
    findings = check_naming(name, four)
    assert codes(findings) == ["naming.group_size"]
    assert findings[0].message == ("the group cell lists 4 students and the file name lists "
                                   "4 students; a group has 2 or 3 members")


def test_single_member() -> None:
    findings = check_naming("Lovelace_2571234.zip", (ADA,))
    assert codes(findings) == ["naming.group_size"]
    assert "1 student;" in findings[0].message or "1 student and" in findings[0].message


def test_group_size_range_is_configurable() -> None:
    assert check_naming("Lovelace_2571234.zip", (ADA,), group_size=(1, 3)) == ()


def test_pattern_error_still_checks_cell() -> None:
    bad = Member("Ada Lovelace", "2571234", "ada at uni")
    findings = check_naming("Lovelace_Turing.zip", (bad,))
    assert codes(findings) == ["naming.pattern", "naming.group_size", "group.email"]
    assert "has no student ids" in findings[0].message


def test_repeated_pair() -> None:
    findings = check_naming("Lovelace_2571234_Lovelace_2571234.zip", (ADA, ALAN))
    assert codes(findings) == ["naming.mismatch"]
    assert "a second time" in findings[0].message


@pytest.mark.parametrize(
    "email",
    ["ada@uni", "ada.uni.example", "ada@@uni.example", "a@b@uni.example", "ada @uni.example",
     "@uni.example", "ada@.example", "ada@uni..example", "ada@uni.example.", ""],
)
def test_bad_email(email: str) -> None:
    member = Member("Ada Lovelace", "2571234", email)
    findings = check_naming("Lovelace_2571234_Turing_2579876.zip", (member, ALAN))
    assert codes(findings) == ["group.email"]
    assert findings[0].message.startswith("not a valid e-mail address: Ada Lovelace:")


@pytest.mark.parametrize(
    "email", ["ada@uni.example", "ada.lovelace+rnn@mail.uni-example.de", "a_b@x.co.uk"]
)
def test_good_email(email: str) -> None:
    member = Member("Ada Lovelace", "2571234", email)
    assert check_naming("Lovelace_2571234_Turing_2579876.zip", (member, ALAN)) == ()


# --------------------------------------------------------------------------- suggest_filename


@pytest.mark.parametrize(
    ("members", "ext", "expected"),
    [
        ((ADA, ALAN), ".zip", "Lovelace_2571234_Turing_2579876.zip"),
        ((ADA, ALAN), "ipynb", "Lovelace_2571234_Turing_2579876.ipynb"),
        ((EMILIE, JOERG, HANS), ".zip", "Chatelet_2570001_Muller_2570002_Gross_2570003.zip"),
        ((Member("Shaquille O'Neil", "1", "s@x.org"), Member("Anne Smith-Jones", "2", "a@x.org")),
         ".zip", "ONeil_1_SmithJones_2.zip"),
        ((Member("Martin Luther King Jr.", "3", "m@x.org"), Member("Søren Łukasz", "4", "s@x.org")),
         ".zip", "King_3_Lukasz_4.zip"),
    ],
)
def test_suggest_filename(members: tuple[Member, ...], ext: str, expected: str) -> None:
    assert suggest_filename(members, ext) == expected
    assert check_naming(expected, members) == ()


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" \
    "äöüÄÖÜßéèêëáàâãåæçíìîïñóòôõøœúùûýÿłđþðÉÈÅØÆÇÑŁĐŠšŽžčćČĆřŘğşİı"
_part = st.builds(
    lambda head, tail, sep, tail2: head + tail + (sep + tail2 if sep else ""),
    st.sampled_from(_LETTERS),
    st.text(alphabet=_LETTERS, max_size=8),
    st.sampled_from(["", "", "-", "'", "\u2019"]),
    st.text(alphabet=_LETTERS, min_size=1, max_size=6),
)
_full_name = st.lists(_part, min_size=1, max_size=4).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(
    names=st.lists(_full_name, min_size=2, max_size=3),
    ids=st.lists(st.from_regex(r"\A[0-9]{5,9}\Z"), min_size=3, max_size=3, unique=True),
    ext=st.sampled_from([".zip", ".ipynb"]),
)
def test_suggested_filename_always_passes(names: list[str], ids: list[str], ext: str) -> None:
    members = tuple(
        Member(name, sid, f"student{i}@uni.example") for i, (name, sid) in enumerate(zip(names, ids))
    )
    suggestion = suggest_filename(members, ext)
    assert suggestion.isascii() or any(not ch.isascii() for n in names for ch in n)
    parsed = parse_filename(suggestion)
    assert parsed.ok, parsed.problem
    assert check_naming(suggestion, members) == ()


# --------------------------------------------------------------------------- hostile sizes


@pytest.mark.timeout(30)
def test_a_name_of_3200_parts_is_a_finding_not_work() -> None:
    from grader.submission.naming import GroupCellError, read_group
    source = 'GROUP = [{"name": "' + "Ada " * 3200 + 'X", "student_id": "1", "email": "a@b.cd"}]'
    with pytest.raises(GroupCellError, match="characters long"):
        read_group(source)
    assert not name_matches("Ada" * 100, "Ada " * 3200)


@pytest.mark.timeout(30)
def test_a_huge_group_cell_is_refused_before_parsing() -> None:
    from grader.submission.naming import MAX_GROUP_CELL_CHARS, GroupCellError, read_group
    with pytest.raises(GroupCellError, match="group cell is"):
        read_group("GROUP = [" + "[" * MAX_GROUP_CELL_CHARS + "]")


def test_a_file_name_over_255_characters_is_a_pattern_finding() -> None:
    parsed = parse_filename("A" * 300 + "_1_B_2.zip")
    assert not parsed.ok and "characters long" in parsed.problem


def test_name_matching_visits_each_character_once_per_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """The matcher is one left-to-right pass per part list: the spellings of each character of
    the name are looked up once per pass (the old matcher re-ran every run of parts: cubic)."""
    import grader.submission.naming as naming
    calls = 0
    real = naming._spellings

    def counting(ch: str) -> frozenset[str]:
        nonlocal calls
        calls += 1
        return real(ch)
    monkeypatch.setattr(naming, "_spellings", counting)
    name = " ".join(["Öb"] * 100)  # 299 characters, 100 parts
    assert not name_matches("Oeb" * 99 + "x", name)
    letters = len(name.replace(" ", ""))
    assert calls <= 2 * letters
    calls = 0
    assert name_matches("ObOeb", name)
    assert calls <= 2 * letters
