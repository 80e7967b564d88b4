from cellchain.core import audit


def test_fresh_database_has_an_intact_empty_chain(session):
    report = audit.verify_chain(session)
    assert report.intact and report.entries_checked == 0


def test_login_and_home(clients, make_user):
    user = make_user("tess", "technician")
    client = clients.web(user)
    page = client.get("/").get_data(as_text=True)
    assert "Tess Tester" in page
